"""Benchmarks of jupyter-collab against the reference (jupyter-collaboration 5.0.4).

Run `python -m benchmarks` (full run, builds the reference's virtualenv on first use) or
`python -m benchmarks --quick` (CI smoke run). See docs/benchmarks.md.
"""

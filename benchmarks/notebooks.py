"""Deterministic test notebooks (written with nbformat, as Jupyter would)."""

from __future__ import annotations

import random
from pathlib import Path

import nbformat


def make_notebook(cells: int, seed: int = 0) -> nbformat.NotebookNode:
    """`cells` cells, like a working notebook: markdown every fifth cell, code cells of
    3-6 lines, every other code cell with a short stream output."""
    rng = random.Random(seed)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11"}
    for i in range(cells):
        if i % 5 == 0:
            nb.cells.append(
                nbformat.v4.new_markdown_cell(
                    f"## Section {i // 5}\n\nNotes on step {i}, seed {rng.random():.6f}."
                )
            )
            continue
        lines = [
            f"x_{i}_{j} = compute({rng.randint(0, 10**6)}, scale={rng.random():.4f})"
            for j in range(rng.randint(3, 6))
        ]
        cell = nbformat.v4.new_code_cell("\n".join(lines), execution_count=i)
        if i % 2 == 0:
            cell.outputs = [
                nbformat.v4.new_output("stream", name="stdout", text=f"result {i}: {rng.random():.8f}\n")
            ]
        nb.cells.append(cell)
    return nb


def last_source(cells: int, seed: int = 0) -> str:
    nb = make_notebook(cells, seed)
    return nb.cells[-1].source if nb.cells else ""


def write_notebooks(root: Path, cells: int, count: int, prefix: str) -> list[str]:
    """Write `count` copies of a `cells`-cell notebook (distinct files); returns API paths."""
    root.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(make_notebook(cells))
    paths = []
    for i in range(count):
        name = f"{prefix}-{cells}c-{i:05d}.ipynb"
        (root / name).write_text(text)
        paths.append(name)
    return paths

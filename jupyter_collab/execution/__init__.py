"""Server-side execution (issue #14, docs/design-execution.md): the server runs a notebook's
cells in its kernel and is the only writer of their outputs, so outputs keep arriving, and
are saved, when the browser that pressed Run has gone.

This package turns kernel messages into the notebook's outputs: `outputs` keeps an
in-memory mirror of each running cell's outputs with JupyterLab's own semantics, and
`writer` coalesces the mirror's changes into writes on the shared document, shaped so that
JupyterLab peers apply them correctly. Kernels, queues and routes come in later slices.
"""

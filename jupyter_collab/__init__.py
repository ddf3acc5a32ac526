"""jupyter-collab: real-time collaboration for Jupyter notebooks and files."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab front end (built from labextension/ by `pip install`), for
    `jupyter labextension develop`; installed wheels put it in share/jupyter/labextensions."""
    return [{"src": "labextension", "dest": "jupyter-collab"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import CollabApp

    return [{"module": "jupyter_collab", "app": CollabApp}]

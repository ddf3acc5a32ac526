"""Read a local notebook file as jupyter_server's file contents manager does, only faster.

Why: the contents manager's `get` validates the whole notebook against the nbformat
schema and builds it as nested `NotebookNode`s; for a 2,000-cell notebook that is about
100 ms of a cold join, for a validation whose only effect is a warning in the model's
`message` (an invalid notebook still loads). Here the file is parsed with `json`, and the
same transformations as the contents manager's reader are applied to plain dicts: list
sources and mime bundles joined into strings, transient keys stripped, code cells marked
trusted or not from the notebook's signature.

Only used when the contents manager is jupyter_server's own file manager reading a
version-4 notebook; anything else (other managers, older formats to convert) goes through
the contents manager. `tests/test_loading.py::test_fast_read_matches_contents_manager`
checks that both read the same content.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from jupyter_server.services.contents.fileio import AsyncFileManagerMixin, FileManagerMixin
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager, FileContentsManager
from nbformat import NotebookNode

_STOCK_READERS = {
    FileContentsManager.get: FileManagerMixin._read_notebook,
    AsyncFileContentsManager.get: AsyncFileManagerMixin._read_notebook,
}
_TEXT_MIMES_KEPT_SPLIT = {"application/javascript", "image/svg+xml"}


def reads_like_stock_manager(contents_manager: Any) -> bool:
    """Whether the contents manager reads notebooks exactly as jupyter_server's does."""
    cls = type(contents_manager)
    return _STOCK_READERS.get(cls.get) is cls._read_notebook


def _join_mimebundle(bundle: dict) -> None:
    for key, value in bundle.items():
        if isinstance(value, list) and (key.startswith("text/") or key in _TEXT_MIMES_KEPT_SPLIT):
            bundle[key] = "".join(value)


def _join_lines(notebook: dict) -> None:
    """nbformat.v4's `rejoin_lines`, on plain dicts."""
    for cell in notebook["cells"]:
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
        for attachment in (cell.get("attachments") or {}).values():
            _join_mimebundle(attachment)
        if cell.get("cell_type") == "code":
            for output in cell.get("outputs", []):
                output_type = output.get("output_type", "")
                if output_type in ("execute_result", "display_data"):
                    _join_mimebundle(output.get("data", {}))
                elif output_type and isinstance(output.get("text", ""), list):
                    output["text"] = "".join(output["text"])


def _strip_transient(notebook: dict) -> None:
    """nbformat.v4's `strip_transient`, on plain dicts."""
    metadata = notebook.setdefault("metadata", {})
    for key in ("orig_nbformat", "orig_nbformat_minor", "signature"):
        metadata.pop(key, None)
    for cell in notebook["cells"]:
        cell.setdefault("metadata", {}).pop("trusted", None)


def _is_version_4_notebook(notebook: Any) -> bool:
    """Shaped enough like nbformat 4 for the transformations below to apply."""
    return (
        isinstance(notebook, dict)
        and notebook.get("nbformat") == 4
        and isinstance(notebook.get("cells"), list)
        and isinstance(notebook.get("metadata", {}), dict)
        and all(
            isinstance(cell, dict) and isinstance(cell.get("metadata", {}), dict)
            for cell in notebook["cells"]
        )
    )


def parse_notebook(data: bytes, contents_manager: Any) -> dict | None:
    """The notebook in `data` as the stock contents manager's `get` returns its content
    (as plain dicts); None when it is not a version-4 notebook (let the manager convert it)."""
    try:
        notebook = json.loads(data)
    except ValueError:
        return None  # the contents manager reports unreadable files in its own words
    if not _is_version_4_notebook(notebook):
        return None
    _join_lines(notebook)
    _strip_transient(notebook)
    # The signature check reads `nb.nbformat` (attribute access) and hashes every value;
    # a top-level NotebookNode over the same nested dicts gives it both.
    trusted = contents_manager.notary.check_signature(NotebookNode(notebook))
    for cell in notebook["cells"]:
        if cell.get("cell_type") == "code":
            cell["metadata"]["trusted"] = trusted
    return notebook


def file_hash(data: bytes, contents_manager: Any) -> str:
    """The hash the contents manager reports for these bytes (`require_hash=True`)."""
    return hashlib.new(contents_manager.hash_algorithm, data).hexdigest()

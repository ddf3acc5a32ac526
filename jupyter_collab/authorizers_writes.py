"""What a non-owner's write through the server's own API would do, beyond its path.

A role on a path says who may write there; these are the writes whose effect reaches
further than the one path the URL names, and that our authorizers therefore look into:

- a **folder** moved, copied or deleted carries everything below it, so every file below
  must allow the same (`folder_tree` lists them, links resolved);
- a **notebook saved** through the contents API is signed with the server owner's key when
  its cells claim trust (`claims_trust`): its outputs would then run scripts in the owner's
  browser (security review C2);
- a **notebook replaced** (saved, deleted, restored from a checkpoint) must not change its
  locked cells: the extension's `contents_write_refusal` rules on that (`lock_refusal`),
  given the notebook that would be written (`incoming_notebook`, `checkpoint_notebook`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

from jupyter_core.utils import ensure_async
from tornado import web

from .paths import PathRefused, canonical_path

# nbformat's notary (nbformat.sign.NotebookNotary._check_cell): outputs that need trust to
# render, unless they carry nothing but these keys. v4 names, and v3's `pyout`.
_UNSAFE_OUTPUTS = frozenset({"execute_result", "display_data", "pyout"})
_SAFE_OUTPUT_KEYS = frozenset({"output_type", "execution_count", "prompt_number", "metadata"})


async def is_folder(handler: Any, path: str) -> bool:
    try:
        return bool(await ensure_async(handler.contents_manager.dir_exists(path)))
    except web.HTTPError:
        return False


async def file_exists(handler: Any, path: str) -> bool:
    try:
        return bool(await ensure_async(handler.contents_manager.file_exists(path)))
    except web.HTTPError:
        return False


def folder_tree(root: str, folder: str, limit: int) -> list[tuple[str, str | None]]:
    """Everything below `folder` (an API path under the local `root`): (path relative to
    the folder, the canonical path a link leads to or None).

    A link is followed by a copy (shutil.copytree copies what links point to), so its
    target is checked too. Raises PathRefused for folders of more than `limit` entries, a
    link to a folder (a copy would descend into it), or a link out of the root.
    """
    base = Path(root) / folder
    found: list[tuple[str, str | None]] = []
    for current, dirs, files in os.walk(base):
        for name in [*dirs, *files]:
            local = Path(current) / name
            relative = local.relative_to(base).as_posix()
            target = None
            if local.is_symlink():
                if local.is_dir():
                    raise PathRefused(403, f"{folder}/{relative} links to a folder")
                target = canonical_path(f"{folder}/{relative}" if folder else relative, root)
            found.append((relative, target))
            if len(found) > limit:
                raise PathRefused(403, f"{folder!r} holds more than {limit} files and folders")
    return found


def incoming_notebook(model: dict[str, Any] | None) -> dict[str, Any] | None:
    """The whole notebook a contents PUT would write, or None when the body is no whole
    notebook (a chunk of an upload, text or bytes that are not notebook JSON)."""
    if not model or model.get("chunk"):
        return None
    content = model.get("content")
    if model.get("type") == "notebook":
        return content if isinstance(content, dict) else None
    if model.get("type") != "file" or not isinstance(content, str):
        return None
    try:
        text = base64.b64decode(content) if model.get("format") == "base64" else content
        parsed = json.loads(text)
    except (ValueError, binascii.Error, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _code_cells(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    cells = list(notebook.get("cells") or [])
    for sheet in notebook.get("worksheets") or []:  # nbformat 3
        if isinstance(sheet, dict):
            cells.extend(sheet.get("cells") or [])
    return [cell for cell in cells if isinstance(cell, dict) and cell.get("cell_type") == "code"]


def _needs_trust(output: Any) -> bool:
    return (
        isinstance(output, dict)
        and output.get("output_type") in _UNSAFE_OUTPUTS
        and bool(set(output) - _SAFE_OUTPUT_KEYS)
    )


def claims_trust(notebook: dict[str, Any]) -> bool:
    """Whether saving this notebook could sign outputs that need trust: a code cell with
    such an output whose metadata says `"trusted": true` (nbformat signs a notebook whose
    cells all are trusted, with the server owner's key)."""
    for cell in _code_cells(notebook):
        metadata = cell.get("metadata")
        trusted = isinstance(metadata, dict) and metadata.get("trusted")
        if trusted and any(_needs_trust(output) for output in cell.get("outputs") or []):
            return True
    return False


def checkpoint_notebook(handler: Any, path: str, checkpoint_id: str | None) -> dict[str, Any] | None:
    """The notebook a checkpoint restore would write, when the checkpoints are files
    (jupyter_server's default FileCheckpoints and its variants); else None."""
    checkpoints = getattr(handler.contents_manager, "checkpoints", None)
    locate = getattr(checkpoints, "checkpoint_path", None)
    if checkpoint_id is None or locate is None:
        return None
    try:
        notebook = json.loads(Path(locate(checkpoint_id, path)).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError, web.HTTPError):
        return None
    return notebook if isinstance(notebook, dict) else None


async def lock_refusal(handler: Any, user: Any, path: str, incoming: dict[str, Any] | None) -> str | None:
    """Why writing `incoming` (None: the notebook is deleted, or replaced by something that
    is no whole notebook) over the notebook at `path` would change cells locked for `user`;
    None when it would not. The extension rules on locks (`contents_write_refusal`)."""
    collab = handler.settings.get("jupyter_collab")
    refusal = getattr(collab, "contents_write_refusal", None)
    if refusal is None:  # the server runs without the extension's lock rule
        return None
    return await refusal(user, path, incoming, handler)

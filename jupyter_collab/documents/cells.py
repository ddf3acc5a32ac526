"""Cell operations by id on a shared notebook: what programs (REST, the Python client) do.

Addressing cells by id, never by index, is what makes programs safe next to people: a
human inserting a cell above does not redirect an edit. Every operation can carry
`expect`, the hash of the cell as the program last read it; if the cell changed since,
the operation is refused with `CellConflict` (HTTP 409) and changes nothing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from typing import Any

from jupyter_ydoc import YNotebook

from .merge import set_cell_field

CELL_TYPES = ("code", "markdown", "raw")
CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # nbformat 4.5's pattern, and its length cap
INSERTABLE_FIELDS = {"id", "cell_type", "source", "metadata", "outputs", "execution_count", "attachments"}


class CellError(ValueError):
    """Bad input for a cell operation (the message names the field)."""


class CellNotFound(KeyError):
    """No cell has that id."""


class CellConflict(Exception):
    """The cell changed since it was read; `current` is how it is now."""

    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__(f"cell {current['id']} changed (hash {current['hash']})")
        self.current = current


def cell_hash(cell: dict[str, Any]) -> str:
    """A hash of everything a program can see of a cell."""
    visible = {k: v for k, v in cell.items() if k not in ("hash", "execution_state")}
    return hashlib.sha256(json.dumps(visible, sort_keys=True).encode("utf-8")).hexdigest()[:20]


def _cell_dict(ynb: YNotebook, index: int) -> dict[str, Any]:
    ycell = ynb.ycells[index]
    cell = ycell.to_py() or {}
    cell.pop("execution_state", None)
    if isinstance(cell.get("execution_count"), float):
        cell["execution_count"] = int(cell["execution_count"])
    cell["id"] = ycell.get("id")
    cell["hash"] = cell_hash(cell)
    return cell


def read_cells(ynb: YNotebook) -> list[dict[str, Any]]:
    return [_cell_dict(ynb, index) for index in range(len(ynb.ycells))]


def find(ynb: YNotebook, cell_id: str) -> int:
    for index, ycell in enumerate(ynb.ycells):
        if ycell.get("id") == cell_id:
            return index
    raise CellNotFound(cell_id)


def read_cell(ynb: YNotebook, cell_id: str) -> dict[str, Any]:
    return _cell_dict(ynb, find(ynb, cell_id))


def _check_expect(ynb: YNotebook, index: int, expect: str | None) -> dict[str, Any]:
    current = _cell_dict(ynb, index)
    if expect is not None and expect != current["hash"]:
        raise CellConflict(current)
    return current


def _position(ynb: YNotebook, before: str | None, after: str | None, index: int | None) -> int:
    given = [x is not None for x in (before, after, index)]
    if sum(given) > 1:
        raise CellError("give at most one of 'before', 'after' and 'index'")
    if before is not None:
        return find(ynb, before)
    if after is not None:
        return find(ynb, after) + 1
    if index is not None:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= len(ynb.ycells):
            raise CellError(f"'index' must be an integer from 0 to {len(ynb.ycells)}")
        return index
    return len(ynb.ycells)


def _validate(fields: dict[str, Any]) -> None:
    if "cell_type" in fields and fields["cell_type"] not in CELL_TYPES:
        raise CellError(f"'cell_type' must be one of {', '.join(CELL_TYPES)}")
    if "source" in fields and not isinstance(fields["source"], str):
        raise CellError("'source' must be a string")
    if "metadata" in fields and not isinstance(fields["metadata"], dict):
        raise CellError("'metadata' must be an object")
    if "outputs" in fields:
        outputs = fields["outputs"]
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("output_type"), str) for o in outputs
        ):
            raise CellError("'outputs' must be a list of objects with an 'output_type'")
    if "execution_count" in fields and fields["execution_count"] is not None:
        count = fields["execution_count"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise CellError("'execution_count' must be a non-negative integer or null")


def insert_cell(
    ynb: YNotebook,
    cell: dict[str, Any],
    *,
    before: str | None = None,
    after: str | None = None,
    index: int | None = None,
) -> dict[str, Any]:
    """Insert a cell (source, cell_type, metadata, outputs; an id is made if none given)."""
    unknown = set(cell) - INSERTABLE_FIELDS
    if unknown:
        raise CellError(f"unknown cell field(s): {', '.join(sorted(unknown))}")
    fields = {"cell_type": "code", "source": "", "metadata": {}, **copy.deepcopy(cell)}
    _validate(fields)
    cell_id = fields.get("id") or uuid.uuid4().hex[:8]
    if not isinstance(cell_id, str) or not CELL_ID.fullmatch(cell_id):
        raise CellError("'id' must be 1 to 64 letters, digits, '-' or '_' (nbformat's cell id)")
    if any(ycell.get("id") == cell_id for ycell in ynb.ycells):
        raise CellError(f"a cell with id {cell_id!r} already exists")
    fields["id"] = cell_id
    if fields["cell_type"] == "code":
        fields.setdefault("outputs", [])
        fields.setdefault("execution_count", None)
    else:
        fields.pop("outputs", None)
        fields.pop("execution_count", None)
    position = _position(ynb, before, after, index)
    with ynb.ydoc.transaction():
        ynb.ycells.insert(position, ynb.create_ycell(fields))
    return _cell_dict(ynb, position)


def patch_cell(ynb: YNotebook, cell_id: str, changes: dict[str, Any], *, expect: str | None = None) -> dict:
    """Change some fields of a cell; `source` is applied as a minimal text edit."""
    allowed = {"source", "metadata", "outputs", "execution_count", "cell_type"}
    unknown = set(changes) - allowed
    if unknown:
        raise CellError(f"cannot patch field(s): {', '.join(sorted(unknown))}")
    _validate(changes)
    index = find(ynb, cell_id)
    _check_expect(ynb, index, expect)
    ycell = ynb.ycells[index]
    with ynb.ydoc.transaction():
        for key, value in changes.items():
            set_cell_field(ynb, ycell, key, value)
    return _cell_dict(ynb, index)


def delete_cell(ynb: YNotebook, cell_id: str, *, expect: str | None = None) -> None:
    index = find(ynb, cell_id)
    _check_expect(ynb, index, expect)
    with ynb.ydoc.transaction():
        del ynb.ycells[index]


def move_cell(
    ynb: YNotebook,
    cell_id: str,
    *,
    before: str | None = None,
    after: str | None = None,
    index: int | None = None,
    expect: str | None = None,
) -> dict[str, Any]:
    """Move a cell (as JupyterLab does: delete and re-insert a copy with the same id)."""
    source = find(ynb, cell_id)
    current = _check_expect(ynb, source, expect)
    if cell_id in (before, after):
        raise CellError("a cell cannot move relative to itself")
    if index is not None and (
        isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(ynb.ycells)
    ):
        raise CellError(f"'index' must be an integer from 0 to {len(ynb.ycells) - 1}")
    # Validate everything before changing anything: a transaction does not roll back.
    target = _position(ynb, before, after, index)
    if index is None and target > source:
        target -= 1  # positions count without the moved cell
    content = {k: v for k, v in current.items() if k != "hash"}
    with ynb.ydoc.transaction():
        del ynb.ycells[source]
        ynb.ycells.insert(target, ynb.create_ycell(content))
    return _cell_dict(ynb, target)

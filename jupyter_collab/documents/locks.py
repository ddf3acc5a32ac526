"""The lock rule for one cell, in one place: who may change, move, remove or lock it.

A cell is *frozen* for a user when its metadata says `editable: false` or the policy locks
it for that user: nothing of it may change, nor may it move or go. A cell with
`deletable: false` may not move or go. Nobody but an owner changes the two flags, on an
existing cell, through a move, or by adding a cell that carries them.

Owners are never asked. The room's guard (`rooms/guard.py`) applies this rule to every
change a non-owner makes, whatever the route (a socket, REST, a merge, a contents-API
write). The Python client asks it before sending, for the cells' own lock flags, so that a
program learns of such a refusal at once instead of losing its edit with everything sent
alongside; cells the policy locks for the program are refused by the server only.
"""

from __future__ import annotations

from typing import Any

LockFlags = tuple[bool, bool]  # (editable, deletable)
UNLOCKED: LockFlags = (True, True)
ADD_LOCKED = "only owners may add locked cells"


def lock_flags(cell_metadata: Any) -> LockFlags:
    """(editable, deletable) from a cell's metadata (nbformat's own flags)."""
    if not isinstance(cell_metadata, dict):
        return UNLOCKED
    return cell_metadata.get("editable", True) is not False, cell_metadata.get("deletable", True) is not False


def cell_refusal(
    cell_id: str,
    flags: LockFlags,
    flags_after: LockFlags,
    *,
    policy_locked: bool = False,
    removed: bool = False,
) -> str | None:
    """Why a non-owner may not make this change to an existing cell (None: they may).

    `flags` are the cell's flags before the change, `flags_after` after it; `removed`
    means the change deletes or moves the cell; `policy_locked` that the permission
    policy locks this cell for the user."""
    editable, deletable = flags
    if flags != flags_after:
        return f"only owners may lock or unlock cell {cell_id}"
    if not editable or policy_locked or (removed and not deletable):
        return f"cell {cell_id} is locked"
    return None


def insert_refusal(flags: LockFlags) -> str | None:
    """Why a non-owner may not add a cell carrying these flags (None: they may)."""
    return None if flags == UNLOCKED else ADD_LOCKED

"""`Change`: what changed in a notebook, by cell id, computed from two snapshots of cell ids
and content hashes (so a program learns which cells moved or changed, not which CRDT items)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from jupyter_ydoc import YNotebook

from ..documents.cells import read_cells


@dataclass(frozen=True)
class Change:
    """What changed in the notebook, by cell id.

    `local` is true for this client's own edits (made through its methods).
    """

    inserted: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # source, metadata, outputs, type or execution count
    moved: tuple[str, ...] = ()
    local: bool = False

    @property
    def cell_ids(self) -> set[str]:
        """Every cell id this change is about."""
        return {*self.inserted, *self.deleted, *self.changed, *self.moved}

    def __bool__(self) -> bool:
        return bool(self.inserted or self.deleted or self.changed or self.moved)


Snapshot = tuple[tuple[str, ...], dict[str, str]]  # cell ids in order, id -> hash


def take_snapshot(ynb: YNotebook) -> Snapshot:
    """The notebook's cell ids in order and each cell's content hash: all `diff` needs."""
    cells = read_cells(ynb)
    return tuple(c["id"] for c in cells), {c["id"]: c["hash"] for c in cells}


def _moved(before: list[str], after: list[str]) -> set[str]:
    """Cells (present in both orders) outside a longest common ordering: the ones that moved."""
    position = {cell_id: index for index, cell_id in enumerate(after)}
    sequence = [position[cell_id] for cell_id in before]
    tails: list[int] = []  # patience sort: longest increasing subsequence of `sequence`
    tail_at: list[int] = []
    previous = [-1] * len(sequence)
    for index, value in enumerate(sequence):
        slot = bisect.bisect_left(tails, value)
        if slot == len(tails):
            tails.append(value)
            tail_at.append(index)
        else:
            tails[slot] = value
            tail_at[slot] = index
        previous[index] = tail_at[slot - 1] if slot else -1
    keep = set()
    index = tail_at[-1] if tail_at else -1
    while index >= 0:
        keep.add(before[index])
        index = previous[index]
    return set(before) - keep


def diff(old: Snapshot, new: Snapshot, local: bool) -> Change:
    """What changed between two snapshots; `local` says whose edits they were."""
    old_order, old_hashes = old
    new_order, new_hashes = new
    common = [cell_id for cell_id in old_order if cell_id in new_hashes]
    common_after = [cell_id for cell_id in new_order if cell_id in old_hashes]
    moved = _moved(common, common_after) if common != common_after else set()
    return Change(
        inserted=tuple(c for c in new_order if c not in old_hashes),
        deleted=tuple(c for c in old_order if c not in new_hashes),
        changed=tuple(c for c in new_order if c in old_hashes and old_hashes[c] != new_hashes[c]),
        moved=tuple(c for c in new_order if c in moved),
        local=local,
    )

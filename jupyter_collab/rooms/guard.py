"""Locked cells: decide, before anything is applied, whether an update touches one.

Yjs updates cannot be inspected without integrating them, so updates from users who must
not touch locked cells are first applied to a shadow copy of the document, observed
deeply to learn which cells they touched; only if the trial passes is the update applied
to the live document (the shadow already has it). A refused trial rebuilds the shadow
from the live document. The shadow exists only in rooms where such users edit.

A cell is *frozen* (nothing of it may change, nor may it move or go) when its metadata has
`editable: false` or the policy locks it for the user; it is *undeletable* with
`deletable: false`. Only owners lock or unlock (change those flags).
"""

from __future__ import annotations

from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Doc

from ..permissions import Access


def lock_flags(cell_metadata: Any) -> tuple[bool, bool]:
    """(editable, deletable) from a cell's metadata (nbformat's own flags)."""
    if not isinstance(cell_metadata, dict):
        return True, True
    return cell_metadata.get("editable", True) is not False, cell_metadata.get("deletable", True) is not False


def _flags_of(ycell: Any) -> tuple[bool, bool]:
    metadata = ycell.get("metadata")
    return lock_flags(metadata.to_py() if hasattr(metadata, "to_py") else metadata)


class LockGuard:
    def __init__(self, live: YNotebook) -> None:
        self.live = live
        self._rebuild()

    def _rebuild(self) -> None:
        self.shadow_doc = Doc()
        self.shadow_doc.apply_update(self.live.ydoc.get_update())
        self.shadow = YNotebook(self.shadow_doc)
        self._touched: set[int] = set()
        self._inserted: set[str] = set()
        self._structural = False
        self.shadow.ycells.observe_deep(self._collect)

    def _collect(self, events: list[Any]) -> None:
        for event in events:
            if event.path:
                self._touched.add(event.path[0])
                continue
            self._structural = True  # cells inserted, deleted or moved
            for change in event.delta:
                for ycell in change.get("insert", []):
                    self._inserted.add(ycell.get("id"))

    def follow(self, update: bytes) -> None:
        """Keep the shadow in step with an update accepted into the live document."""
        self.shadow_doc.apply_update(update)

    def refusal(self, update: bytes, access: Access, can_lock: bool) -> str | None:
        """Why `update` may not be applied for this user, or None when it may."""
        live_cells = self.live.ycells
        before_ids = [ycell.get("id") for ycell in live_cells]
        before = {cell_id: index for index, cell_id in enumerate(before_ids)}
        self._touched.clear()
        self._inserted.clear()
        self._structural = False
        self.shadow_doc.apply_update(update)
        shadow_cells = self.shadow.ycells
        reason = None
        touched_ids = {shadow_cells[i].get("id") for i in self._touched if i < len(shadow_cells)}
        for cell_id in touched_ids:
            if cell_id not in before:
                continue  # a cell this very update created
            editable, deletable = _flags_of(live_cells[before[cell_id]])
            after = _flags_of(shadow_cells[[c.get("id") for c in shadow_cells].index(cell_id)])
            if (editable, deletable) != after and not can_lock:
                reason = f"only owners may lock or unlock cell {cell_id}"
            elif not editable or cell_id in access.locked_cells:
                reason = f"cell {cell_id} is locked"
            if reason:
                break
        if reason is None and self._structural:
            reason = self._structural_refusal(before_ids, access, can_lock)
        if reason is not None:
            self._rebuild()
        return reason

    def _structural_refusal(self, before_ids: list[str], access: Access, can_lock: bool) -> str | None:
        after_cells = self.shadow.ycells
        remaining = {ycell.get("id") for ycell in after_cells}
        # JupyterLab moves a cell by deleting it and inserting a copy with the same id.
        moved = self._inserted & set(before_ids)
        live_cells = self.live.ycells
        for index, cell_id in enumerate(before_ids):
            editable, deletable = _flags_of(live_cells[index])
            frozen = not editable or cell_id in access.locked_cells
            gone = cell_id not in remaining
            if (gone or cell_id in moved) and (frozen or not deletable):
                return f"cell {cell_id} is locked"
        if not can_lock:
            known = set(before_ids)
            for ycell in after_cells:
                if ycell.get("id") not in known and _flags_of(ycell) != (True, True):
                    return "only owners may add locked cells"
        return None

"""The lock rule, enforced on every change a non-owner makes to a shared notebook.

Yjs updates cannot be inspected without integrating them, so every change by a user who
may not lock cells (an editor) is first made on a shadow copy of the document, observed
deeply to learn which cells it touched, and judged; only a change that passes is applied
to the live document. The same trial serves every way a notebook changes: a client's
update (`check`), and a change the server makes on someone's behalf (`trial`: REST edits,
the merge of a client with an unrelated history, a contents-API write). A refused trial
rebuilds the shadow from the live document. The shadow exists only in rooms where such
users edit.

The rule, for anyone who is not an owner:
- the lock rule of `documents/locks.py` for each cell the change touches, moves, removes
  or adds (frozen cells, undeletable cells, the lock flags themselves);
- cell ids never change: cells are matched by id everywhere else (REST, merges, locks);
- an update that depends on items the server does not have is refused: yrs would hold
  it and integrate it later, inside somebody else's change, where no check sees it;
- trust belongs to the owner: a touched or added cell whose metadata says `trusted` is
  made untrusted in the same transaction (`Verdict.untrust`), so that no output written
  by someone else ever renders as trusted (scripts run) in the owner's JupyterLab.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map, get_update

from ..documents.locks import LockFlags, cell_refusal, insert_refusal, lock_flags
from ..permissions import Access
from ..protocol import ProtocolError, Reader, decode_state_vector

T = TypeVar("T")

UNKNOWN_DEPENDENCY = "the change depends on edits the server does not have; reload"


def _metadata(ycell: Any) -> Any:
    metadata = ycell.get("metadata")
    return metadata.to_py() if hasattr(metadata, "to_py") else metadata


def _flags_of(ycell: Any) -> LockFlags:
    return lock_flags(_metadata(ycell))


def _trusted(ycell: Any) -> bool:
    metadata = _metadata(ycell)
    return isinstance(metadata, dict) and bool(metadata.get("trusted"))


class ChangeRefused(Exception):
    """A change the lock rule does not allow; the message says why."""


@dataclass(frozen=True)
class Verdict:
    """The guard's answer: why a change is refused (None: allowed), and which cells the
    server makes untrusted in the same transaction when it is applied."""

    refusal: str | None = None
    untrust: frozenset[str] = frozenset()


def untrust(ynb: YNotebook, cell_ids: frozenset[str]) -> None:
    """Set `metadata.trusted` to false on these cells (inside the caller's transaction)."""
    if not cell_ids:
        return
    for ycell in ynb.ycells:
        if ycell.get("id") in cell_ids:
            metadata = ycell.get("metadata")
            if isinstance(metadata, Map):
                metadata["trusted"] = False
            else:
                ycell["metadata"] = Map({**(metadata or {}), "trusted": False})


def pending_refusal(update: bytes, state_after: bytes) -> str | None:
    """Why `update` left something pending in a document whose state is now `state_after`:
    structs past what the document integrated, or deletions of items it does not have.

    What the document did not integrate is the update's diff against the document's
    state: its structs come first (their client count must be 0), then the update's whole
    delete set, whose ranges must all lie within what the document knows (v1 encoding)."""
    known = decode_state_vector(state_after)
    try:
        reader = Reader(get_update(update, state_after))
        if reader.var_uint() != 0:
            return UNKNOWN_DEPENDENCY
        for _ in range(reader.var_uint()):
            client = reader.var_uint()
            for _ in range(reader.var_uint()):
                clock, length = reader.var_uint(), reader.var_uint()
                if clock + length > known.get(client, 0):
                    return UNKNOWN_DEPENDENCY
    except ValueError as exc:  # ProtocolError is one
        raise ProtocolError(f"invalid update: {exc}") from exc
    return None


class LockGuard:
    def __init__(self, live: YNotebook) -> None:
        self.live = live
        self._rebuild()

    def _rebuild(self) -> None:
        self.shadow_doc = Doc()
        self.shadow_doc.apply_update(self.live.ydoc.get_update())
        self.shadow = YNotebook(self.shadow_doc)
        self._reset()
        self.shadow.ycells.observe_deep(self._collect)

    def _reset(self) -> None:
        self._touched: set[int] = set()
        self._inserted: list[Any] = []
        self._renamed: list[str] = []
        self._structural = False

    def _collect(self, events: list[Any]) -> None:
        for event in events:
            if not event.path:
                self._structural = True  # cells inserted, deleted or moved
                for change in event.delta:
                    self._inserted.extend(change.get("insert", []))
                continue
            self._touched.add(event.path[0])
            keys = getattr(event, "keys", None)
            if len(event.path) == 1 and isinstance(keys, dict) and "id" in keys:
                self._renamed.append(str(keys["id"].get("oldValue")))

    def follow(self, update: bytes) -> None:
        """Keep the shadow in step with an update accepted into the live document."""
        self.shadow_doc.apply_update(update)

    def check(self, update: bytes, access: Access) -> Verdict:
        """Judge a client's update (it stays applied to the shadow when allowed)."""
        self._reset()
        try:
            self.shadow_doc.apply_update(update)
            reason = pending_refusal(update, self.shadow_doc.get_state())
        except ValueError:  # ProtocolError is one
            self._rebuild()  # the shadow may hold part of a broken update
            raise
        verdict = Verdict(reason) if reason else self._judge(access)
        if verdict.refusal is not None:
            self._rebuild()
        return verdict

    def trial(self, change: Callable[[YNotebook], T], access: Access) -> tuple[T, bytes, Verdict]:
        """Make a change on the shadow on someone's behalf; returns what `change` returned,
        the update it made (to apply to the live document when allowed) and the verdict."""
        self._reset()
        state = self.shadow_doc.get_state()
        try:
            result = change(self.shadow)  # in transactions of its own (merges name their origin)
        except BaseException:
            self._rebuild()
            raise
        update = self.shadow_doc.get_update(state)
        verdict = self._judge(access)
        if verdict.refusal is not None:
            self._rebuild()
        return result, update, verdict

    def dry_run(self, change: Callable[[YNotebook], Any], access: Access) -> Verdict:
        """The verdict on a change, which is then forgotten (the shadow is rebuilt)."""
        _, _, verdict = self.trial(change, access)
        if verdict.refusal is None:
            self._rebuild()
        return verdict

    def _live_positions(self) -> dict[str, int]:
        """Where each cell is in the live document, which stays as it was until the verdict
        is applied. Read only for changes that insert, delete or move cells: otherwise a cell
        is at the same place in both documents, and a keystroke in a notebook of thousands
        of cells must not read every cell (tens of milliseconds at 2,000)."""
        return {ycell.get("id"): index for index, ycell in enumerate(self.live.ycells)}

    def _judge(self, access: Access) -> Verdict:
        if self._renamed:
            return Verdict(f"cell ids cannot change (cell {self._renamed[0]})")
        live_cells = self.live.ycells
        shadow_cells = self.shadow.ycells
        before = self._live_positions() if self._structural else None
        untrusted: set[str] = set()
        for index in sorted(self._touched):
            if index >= len(shadow_cells):
                continue
            ycell = shadow_cells[index]
            cell_id = ycell.get("id")
            live_index = index if before is None else before.get(cell_id)
            if live_index is not None:  # not a cell this very change added
                flags = _flags_of(live_cells[live_index])
                locked = cell_id in access.locked_cells
                reason = cell_refusal(cell_id, flags, _flags_of(ycell), policy_locked=locked)
                if reason:
                    return Verdict(reason)
            if _trusted(ycell):
                untrusted.add(cell_id)
        if before is not None:
            reason = self._structural_refusal(before, access)
            if reason:
                return Verdict(reason)
            untrusted.update(ycell.get("id") for ycell in self._inserted if _trusted(ycell))
        return Verdict(None, frozenset(untrusted))

    def _structural_refusal(self, before: dict[str, int], access: Access) -> str | None:
        remaining = {ycell.get("id") for ycell in self.shadow.ycells}
        inserted = {ycell.get("id"): _flags_of(ycell) for ycell in self._inserted}
        for ycell in self.live.ycells:  # in one pass: indexing a Y array walks it
            cell_id = ycell.get("id")
            # JupyterLab moves a cell by deleting it and inserting a copy with the same id.
            moved = cell_id in inserted
            if cell_id in remaining and not moved:
                continue
            flags = _flags_of(ycell)
            locked = cell_id in access.locked_cells
            reason = cell_refusal(cell_id, flags, flags, policy_locked=locked, removed=True)
            if reason is None and moved:
                reason = cell_refusal(cell_id, flags, inserted[cell_id])
            if reason:
                return reason
        for cell_id, flags in inserted.items():
            reason = None if cell_id in before else insert_refusal(flags)
            if reason:
                return reason
        return None

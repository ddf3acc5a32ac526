"""The output writer: brings the document's outputs in line with the output mirrors of a
room's running cells, in coalesced batches (docs/design-execution.md §7).

Why coalesce: a kernel printing in a loop sends hundreds of messages a second, and each
write is a Yjs transaction, an update broadcast to every peer and a change to save. Why not
simply delay: a quiet cell must not wait. So the first change after a pause is written on
the next loop turn, and what follows within `window` seconds is written together at the
window's end, every dirty cell in one operation.

Why the shapes: JupyterLab peers do not apply Yjs events literally
(`CodeCellModel._onSharedModelChanged`): an inserted output is always appended, and a
stream's text event is applied to the last output as "remove the last n characters, append
s". The mirror's `Delta` is therefore written as at most one tail edit (`replace_tail`)
on the output that was last, then removal of outputs from an index to the end, then
appends. A display update in the middle of the list is a removal of the tail from it and a
re-insert, never an insert in the middle.

Everything goes through `apply(operation)`, which runs `operation(notebook)` in one
transaction: the room passes its server-only change path, tests a plain transaction. Time
comes from the injected `clock` and `call_later` (the event loop's `time` and `call_later`
in the server, a fake clock in tests).

Called by later slices (the executor, §6): `start` when a cell starts running, `finish`
when its request ends (before `execution_count` is written), `flush` when the room stops,
and `displays.reset()` when the kernel restarts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from jupyter_ydoc import YNotebook
from pycrdt import Array, Map, Text

from ..documents.textmerge import replace_tail
from .displays import DisplayIndex, ForeignUpdate, Output, output_digest
from .outputs import OutputMirror

Operation = Callable[[YNotebook], None]
DEFAULT_LIMIT = 2 * 1024 * 1024


class Handle(Protocol):
    def cancel(self) -> None: ...


def _youtput(output: Output) -> Map:
    """An output as jupyter-ydoc's `_create_youtputs` makes it: stream text as `Text`."""
    value = dict(output)
    if value.get("output_type") == "stream":
        value["text"] = Text(value.get("text", ""))
    return Map(value)


class OutputWriter:
    """Writes the outputs of one room's running cells, and display updates of its
    finished ones, into its notebook."""

    def __init__(
        self,
        apply: Callable[[Operation], None],
        *,
        clock: Callable[[], float],
        call_later: Callable[[float, Callable[[], None]], Handle],
        window: float = 0.05,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self._apply = apply
        self._clock = clock
        self._call_later = call_later
        self.window = window
        self.limit = limit
        self.displays = DisplayIndex(on_foreign=self._schedule)
        self._mirrors: dict[str, OutputMirror] = {}
        self._dirty: dict[str, None] = {}  # cell ids, in the order they changed
        self._maps: dict[str, Map] = {}  # the cell map each cell id was last found as
        self._timer: Handle | None = None
        self._last_flush = -math.inf

    def start(self, cell_id: str) -> OutputMirror:
        """A cell starts running; its outputs are assumed already cleared in the document
        (the enqueue transaction clears them, as JupyterLab's Run does)."""
        mirror = OutputMirror(
            cell_id, limit=self.limit, displays=self.displays, on_change=lambda: self._changed(cell_id)
        )
        self._mirrors[cell_id] = mirror
        return mirror

    def finish(self, cell_id: str) -> None:
        """A cell's request ended: write what is left now, then keep only where its
        displays are, for later updates."""
        self.flush()
        mirror = self._mirrors.pop(cell_id, None)
        self._maps.pop(cell_id, None)
        if mirror is not None:
            self.displays.retire(mirror)

    def flush(self) -> None:
        """Write every pending change now, in one operation."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last_flush = self._clock()
        cells = [self._mirrors[cell_id] for cell_id in self._dirty if cell_id in self._mirrors]
        self._dirty.clear()
        foreign = _coalesce(self.displays.take_foreign())
        if cells or foreign:
            self._apply(lambda notebook: self._write(notebook, cells, foreign))

    def _changed(self, cell_id: str) -> None:
        self._dirty[cell_id] = None
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is None:
            delay = max(0.0, self._last_flush + self.window - self._clock())
            self._timer = self._call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def _write(self, notebook: YNotebook, cells: list[OutputMirror], foreign: list[ForeignUpdate]) -> None:
        for mirror in cells:
            ycell, moved = self._locate(notebook, mirror.cell_id)
            if ycell is None:  # deleted: the run goes on, its outputs go nowhere
                mirror.take_delta()
                continue
            if not isinstance(ycell.get("outputs"), Array):
                ycell["outputs"] = Array()
            youtputs: Array = ycell["outputs"]
            # A moved cell is a new map holding a copy of what its mover had seen; any other
            # difference in length means the outputs are not what we wrote: write them whole.
            full = moved or len(youtputs) != mirror.synced
            delta = mirror.take_delta(full=full)
            if delta.text is not None:
                edit = delta.text
                replace_tail(youtputs[edit.index]["text"], edit.old, edit.new, edit.offset)
            if delta.keep < len(youtputs):
                del youtputs[delta.keep :]
            if delta.append:
                youtputs.extend([_youtput(output) for output in delta.append])
        for update in foreign:
            self._write_foreign(notebook, update)

    def _write_foreign(self, notebook: YNotebook, update: ForeignUpdate) -> None:
        """Update a finished cell's output in place, if it is still the one we wrote: the
        outputs from it to the end are removed and written again (constraint a)."""
        ycell, _ = self._locate(notebook, update.cell_id)
        youtputs = ycell.get("outputs") if ycell is not None else None
        if (
            not isinstance(youtputs, Array)
            or update.position >= len(youtputs)
            or output_digest(youtputs[update.position].to_py()) != update.expected
        ):
            self.displays.forget(update.cell_id, update.position)
            return
        if update.cell_id not in self._mirrors:
            self._maps.pop(update.cell_id, None)
        rest = [youtputs[index].to_py() for index in range(update.position + 1, len(youtputs))]
        del youtputs[update.position :]
        youtputs.extend([_youtput(output) for output in [update.output, *rest]])

    def _locate(self, notebook: YNotebook, cell_id: str) -> tuple[Map | None, bool]:
        """The cell's map, and whether it is a different map than last time (moved). A
        deleted map reads as empty in pycrdt, in the deleting transaction too, so the id
        check on the remembered map tells whether it is still in the document."""
        known = self._maps.get(cell_id)
        if known is not None and known.get("id") == cell_id:
            return known, False
        for ycell in notebook.ycells:
            if ycell.get("id") == cell_id:
                self._maps[cell_id] = ycell
                return ycell, known is not None
        return None, False


def _coalesce(updates: list[ForeignUpdate]) -> list[ForeignUpdate]:
    """Several updates of one output in a batch: the first's expectation, the last's value."""
    merged: dict[tuple[str, int], ForeignUpdate] = {}
    for update in updates:
        key = (update.cell_id, update.position)
        first = merged.get(key, update)
        merged[key] = ForeignUpdate(update.cell_id, update.position, first.expected, update.output)
    return list(merged.values())

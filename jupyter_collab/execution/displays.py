"""Display ids across the cells of one kernel and room, so that `update_display_data`
replaces the outputs that showed an id in every cell, as JupyterLab's
`KernelConnection._handleDisplayId` does for every request it still follows.

Live cells are updated in their mirrors. For finished cells only where the output is (cell,
position) and a digest of it are kept, not the outputs: the writer updates the document
there if the output is still the one written, and the entry is dropped otherwise, or when
the cell runs again (docs/design-execution.md §7, display index).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

Output = dict[str, Any]


class DisplaySource(Protocol):
    """What the index needs of an output mirror."""

    cell_id: str

    def replace_display(self, display_id: str, output: Output) -> None: ...

    def displays(self) -> Iterator[tuple[int, str, Output]]: ...


def canonical(value: Any) -> Any:
    """JSON as the document gives it back: Yjs numbers are floats, so 3.0 and 3 are one."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def output_digest(output: Output) -> str:
    """A digest of one output that is the same for the mirror's dict and the document's."""
    text = json.dumps(canonical(output), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class DisplayRef:
    """Where a finished cell shows a display id: its position and the output's digest."""

    cell_id: str
    position: int
    digest: str


@dataclass(frozen=True)
class ForeignUpdate:
    """A display update for output `position` of a finished cell, if it is still `expected`."""

    cell_id: str
    position: int
    expected: str
    output: Output


class DisplayIndex:
    """Display ids across the cells of one kernel and room: live mirrors, and for finished
    cells where the output is, so that an update reaches it as JupyterLab's does."""

    def __init__(self, on_foreign: Callable[[], None]) -> None:
        self._on_foreign = on_foreign
        self._live: dict[str, DisplaySource] = {}
        self._shown: dict[str, set[str]] = {}  # display id -> ids of live cells showing it
        self._refs: dict[str, list[DisplayRef]] = {}
        self._pending: list[ForeignUpdate] = []

    def attach(self, mirror: DisplaySource) -> None:
        """A cell starts running: its earlier outputs are about to go."""
        self.forget(mirror.cell_id)
        self._live[mirror.cell_id] = mirror

    def shown(self, display_id: str, cell_id: str) -> None:
        self._shown.setdefault(display_id, set()).add(cell_id)

    def knows(self, display_id: str) -> bool:
        return display_id in self._shown or display_id in self._refs

    def update(self, display_id: str, output: Output) -> None:
        for cell_id in sorted(self._shown.get(display_id, ())):
            self._live[cell_id].replace_display(display_id, output)
        digest = output_digest(output)
        for ref in self._refs.get(display_id, ()):
            self._pending.append(ForeignUpdate(ref.cell_id, ref.position, ref.digest, output))
            ref.digest = digest
        if self._refs.get(display_id):
            self._on_foreign()

    def retire(self, mirror: DisplaySource) -> None:
        """A cell ended and its outputs are written: remember where its displays are."""
        self._live.pop(mirror.cell_id, None)
        for cells in self._shown.values():
            cells.discard(mirror.cell_id)
        self._shown = {key: cells for key, cells in self._shown.items() if cells}
        for position, display_id, output in mirror.displays():
            self._refs.setdefault(display_id, []).append(
                DisplayRef(mirror.cell_id, position, output_digest(output))
            )

    def forget(self, cell_id: str, position: int | None = None) -> None:
        """Drop a finished cell's entries (re-run, or its output is no longer ours)."""
        for display_id, refs in list(self._refs.items()):
            kept = [r for r in refs if r.cell_id != cell_id or position not in (None, r.position)]
            if kept:
                self._refs[display_id] = kept
            else:
                del self._refs[display_id]

    def take_foreign(self) -> list[ForeignUpdate]:
        pending, self._pending = self._pending, []
        return pending

    def reset(self) -> None:
        """The kernel restarted: its display ids mean nothing any more."""
        self._shown.clear()
        self._refs.clear()
        self._pending.clear()

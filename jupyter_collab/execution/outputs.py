"""The output mirror: one running cell's outputs, built from kernel messages with
JupyterLab's own semantics (docs/design-execution.md §7), so that the outputs the server
writes look exactly like those JupyterLab would have shown had the browser run the cell.

Why a mirror rather than writing each message into the document: the document is written
in coalesced batches (`writer.py`), and JupyterLab's reader only applies some shapes of
change correctly (§2, constraints a and b). The mirror holds the truth and hands out, per
batch, a `Delta` in those shapes: at most one tail edit of the text of the output that was
last, then removals from an index to the end and appends.

Semantics, each after the JupyterLab 4.6 code it follows:
- consecutive stream chunks of the same name merge into one output, and `\\r`, `\\b` and
  `\\n` are applied as `Private.processText` (outputarea `model.ts`) does, in linear time
  (`streams.StreamText`);
- `clear_output(wait=True)` clears at the next output, `clear_output()` at once
  (`OutputAreaModel.clear`);
- a `display_data` whose display id was seen before first updates every output showing
  that id, in this cell and in others, then is appended; `update_display_data` only updates
  (`KernelConnection._handleDisplayId`, `OutputArea._onIOPub`); other cells, finished
  ones included, are reached through `displays.DisplayIndex`;
- a per-cell size bound: past it, output is counted, not kept, and one note says how much
  was dropped; errors are still kept, tracebacks bounded.

Text is counted in code points, as a terminal counts characters: JupyterLab counts UTF-16
units and `\\r` followed by text can leave half of an emoji behind there, which could not be
written to the document; for text without astral characters the results are identical.

Called by later slices (kernel routing, §6): `OutputMirror.handle`, `add_page` (execute
reply payloads), `add_input` (answered `input()`); and `DisplayIndex.reset` (kernel restart).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .displays import DisplayIndex
from .streams import StreamText, utf8

Output = dict[str, Any]

TRACEBACK_LIMIT = 64 * 1024
NOTE_PREFIX = "[jupyter-collab] output truncated:"
_RICH = ("display_data", "execute_result")


def _value_bytes(value: Any) -> int:
    if isinstance(value, str):
        return utf8(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return sum(utf8(item) for item in value)
    return utf8(json.dumps(value))


def _human(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


class _Entry:
    """One output of the mirror: a rich output as nbformat, or a stream being built."""

    __slots__ = ("display_id", "output", "size", "stream")

    def __init__(
        self, output: Output, size: int, stream: StreamText | None = None, display_id: str | None = None
    ):
        self.output = output
        self.size = size
        self.stream = stream
        self.display_id = display_id

    def as_output(self) -> Output:
        if self.stream is None:
            return self.output
        return {**self.output, "text": self.stream.text()}


@dataclass(frozen=True)
class TailEdit:
    """Replace the text of output `index` after UTF-8 byte `offset` from `old` to `new`."""

    index: int
    offset: int
    old: str
    new: str


@dataclass(frozen=True)
class Delta:
    """What to do to the document's outputs, which number `expected`: the tail edit first
    (on the output that was last), then remove outputs from `keep` on, then append."""

    expected: int
    text: TailEdit | None
    keep: int
    append: list[Output]


class OutputMirror:
    """The outputs of one running cell, and what the document has of them."""

    def __init__(
        self, cell_id: str, *, limit: int, displays: DisplayIndex, on_change: Callable[[], None]
    ) -> None:
        self.cell_id = cell_id
        self.limit = limit
        self._displays = displays
        self._on_change = on_change
        self._entries: list[_Entry] = []
        self._size = 0
        self._clear_next = False
        self._dropped_bytes = 0
        self._dropped_lines = 0
        self._dropped_outputs = 0
        self._synced = 0  # outputs the document holds, as of the last delta
        self._dirty_from = 0  # the lowest output changed other than by a tail edit
        self._stable: tuple[int, int, str] | None = None  # last stream: parts, bytes, tail
        displays.attach(self)

    @property
    def truncated(self) -> bool:
        return bool(self._dropped_bytes or self._dropped_outputs)

    @property
    def synced(self) -> int:
        """How many outputs the document holds if it took every delta handed out."""
        return self._synced

    @property
    def outputs(self) -> list[Output]:
        found = [entry.as_output() for entry in self._entries]
        return [*found, self._note()] if self.truncated else found

    def handle(self, msg_type: str, content: dict[str, Any]) -> None:
        """Apply one iopub message of this cell's request."""
        display_id = (content.get("transient") or {}).get("display_id")
        if msg_type == "clear_output":
            if content.get("wait"):
                self._clear_next = True
            else:
                self._clear()
        elif msg_type == "update_display_data":
            if display_id:
                self._displays.update(display_id, _rich("display_data", content))
        elif msg_type == "stream":
            text = content.get("text", "")
            self._add_stream(content.get("name", "stdout"), text if isinstance(text, str) else "".join(text))
        elif msg_type in _RICH:
            output = _rich(msg_type, content)
            if msg_type == "display_data" and display_id and self._displays.knows(display_id):
                self._displays.update(display_id, output)
            self._add_rich(output, display_id if msg_type == "display_data" else None)
        elif msg_type == "error":
            self._add_error(content)

    def add_page(self, data: dict[str, Any]) -> None:
        """A `page` payload of the execute reply, shown as JupyterLab's `_onExecuteReply`."""
        self._add_rich({"output_type": "display_data", "data": data, "metadata": {}}, None)

    def add_input(self, prompt: str, value: str, password: bool) -> None:
        """An answered `input()`, echoed as JupyterLab's `OutputArea.onInputRequest`."""
        self._add_stream("stdin", f"{prompt}{'········' if password else value}\n")

    def displays(self) -> Iterator[tuple[int, str, Output]]:
        for position, entry in enumerate(self._entries):
            if entry.display_id:
                yield position, entry.display_id, entry.output

    def replace_display(self, display_id: str, output: Output) -> None:
        """Show `output` in place of every output of this cell carrying `display_id`."""
        size = sum(_value_bytes(value) for value in output.get("data", {}).values())
        for position, entry in enumerate(self._entries):
            if entry.display_id != display_id:
                continue
            if self._size - entry.size + size > self.limit:
                self._drop(size, 1)
                continue
            self._size += size - entry.size
            entry.output, entry.size = output, size
            self._touch(position)

    def take_delta(self, full: bool = False) -> Delta:
        """What the document needs to match the mirror, since the last delta (or from
        nothing, with `full`: the document's outputs were replaced behind our back)."""
        outputs_now = len(self._entries) + self.truncated
        expected, text = self._synced, None
        keep = 0 if full else min(self._dirty_from, self._synced)
        if keep == self._synced and self._stable is not None:
            parts, offset, old = self._stable
            entry = self._entries[keep - 1]
            assert entry.stream is not None
            new = entry.stream.since(parts)
            if new != old:
                text = TailEdit(keep - 1, offset, old, new)
        append = [entry.as_output() for entry in self._entries[keep:]]
        if self.truncated and keep <= len(self._entries):
            append.append(self._note())
        self._synced = self._dirty_from = outputs_now
        last = self._entries[-1].stream if self._entries and not self.truncated else None
        self._stable = (
            None
            if last is None
            else (last.committed_parts, last.committed_bytes, last.since(last.committed_parts))
        )
        return Delta(expected, text, keep, append)

    def _touch(self, position: int) -> None:
        self._dirty_from = min(self._dirty_from, position)
        self._on_change()

    def _apply_clear_next(self) -> None:
        if self._clear_next:
            self._clear()

    def _clear(self) -> None:
        self._clear_next = False
        self._entries.clear()
        self._size = self._dropped_bytes = self._dropped_lines = self._dropped_outputs = 0
        self._touch(0)

    def _add_stream(self, name: str, text: str) -> None:
        self._apply_clear_next()
        if self.truncated:
            self._drop(utf8(text), 0, text.count("\n"))
            return
        last = self._entries[-1] if self._entries else None
        if last is None or last.stream is None or last.output["name"] != name:
            last = _Entry({"output_type": "stream", "name": name}, 0, StreamText())
            self._entries.append(last)
            self._touch(len(self._entries) - 1)
        stream = last.stream
        assert stream is not None
        stable = stream.committed_bytes
        stream.feed(text)
        self._size += stream.size - last.size
        last.size = stream.size
        if self._size > self.limit:
            cut = stream.truncate(max(0, last.size - (self._size - self.limit)))
            self._size -= last.size - stream.size
            last.size = stream.size
            self._drop(utf8(cut), 0, cut.count("\n"))
            if stream.committed_bytes < stable:  # the cut reached text the document has
                self._touch(len(self._entries) - 1)
        self._on_change()

    def _add_rich(self, output: Output, display_id: str | None) -> None:
        self._apply_clear_next()
        size = sum(_value_bytes(value) for value in output.get("data", {}).values())
        if self.truncated or self._size + size > self.limit:
            self._drop(size, 1)
            return
        self._size += size
        self._entries.append(_Entry(output, size, display_id=display_id))
        if display_id:
            self._displays.shown(display_id, self.cell_id)
        self._touch(len(self._entries) - 1)

    def _add_error(self, content: dict[str, Any]) -> None:
        """Errors are kept past the bound (they say why the run stopped), before the note."""
        self._apply_clear_next()
        traceback: list[str] = []
        budget = TRACEBACK_LIMIT
        for line in content.get("traceback", []):
            budget -= utf8(line)
            if budget < 0:
                traceback.append(f"[jupyter-collab] traceback cut at {_human(TRACEBACK_LIMIT)}")
                break
            traceback.append(line)
        output = {
            "output_type": "error",
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", "")[:TRACEBACK_LIMIT],
            "traceback": traceback,
        }
        size = sum(utf8(line) for line in traceback) + utf8(output["evalue"])
        self._size += size
        self._entries.append(_Entry(output, size))
        self._touch(len(self._entries) - 1)

    def _drop(self, size: int, outputs: int, lines: int = 0) -> None:
        self._dropped_bytes += size
        self._dropped_outputs += outputs
        self._dropped_lines += lines
        self._touch(len(self._entries))  # the note, always last, changes

    def _note(self) -> Output:
        """Shown as `display_data`, not as a stderr stream as in the design: a stream would
        merge, in JupyterLab peers, into a stderr stream just before it."""
        what = [f"{self._dropped_lines:,} more lines"] if self._dropped_lines else []
        if self._dropped_outputs:
            what.append(f"{self._dropped_outputs:,} more outputs")
        text = (
            f"{NOTE_PREFIX} {' and '.join(what) or 'more output'} ({_human(self._dropped_bytes)}) not kept "
            f"(c.CollabApp.max_cell_output_bytes = {_human(self.limit)})"
        )
        return {"output_type": "display_data", "data": {"text/plain": text}, "metadata": {}}


def _rich(msg_type: str, content: dict[str, Any]) -> Output:
    output: Output = {
        "output_type": msg_type,
        "data": content.get("data", {}),
        "metadata": content.get("metadata", {}),
    }
    if msg_type == "execute_result":
        output["execution_count"] = content.get("execution_count")
    return output

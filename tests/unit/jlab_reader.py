"""A test oracle: what a JupyterLab 4.6 peer's output area shows after each transaction.

It re-implements, on pycrdt events, the two readers the writer must satisfy:
`YCodeCell.getChanges` (@jupyter/ydoc `lib/ycell.js`: of the text events under
`outputs[i].text` only the first is used; the outputs array's delta) and
`CodeCellModel._onSharedModelChanged` (cells `lib/model.js`: a text delta removes the last
n characters of the *last* output and appends; an inserted output is always appended, by
`OutputAreaModel.add`, which merges a stream into a last stream of the same name). A writer
whose updates JupyterLab would misapply makes `shown` differ from the document.

`process_text` is a literal port of `Private.processText` (outputarea `lib/model.js`),
string slicing and all, independent of the mirror's linear version.
"""

from __future__ import annotations

import re
from typing import Any

from jupyter_ydoc import YNotebook


def process_text(index: int, new_text: str, text: str = "") -> tuple[str, int]:
    if not any(c in new_text for c in "\b\r\n"):
        return text[:index] + new_text + text[index + len(new_text) :], index + len(new_text)
    idx0, last_end = index, 0
    while True:
        found = re.compile("[\n\b\r]").search(new_text, last_end)
        idx1 = found.start() if found else -1
        prefix = new_text[last_end : len(new_text) if idx1 == -1 else idx1]
        text = text[:idx0] + prefix + text[idx0 + len(prefix) :]
        last_end = idx1 + 1
        idx0 += len(prefix)
        if idx1 == -1:
            return text, idx0
        char = new_text[idx1]
        if char == "\b":
            if idx0 > 0 and text[idx0 - 1] != "\n":
                text = text[: idx0 - 1] + text[idx0 + 1 :]
                idx0 -= 1
        elif char == "\r":
            while idx0 > 0 and text[idx0 - 1] != "\n":
                idx0 -= 1
        else:
            text += "\n"
            idx0 = len(text)


class OutputArea:
    """`OutputAreaModel` as far as the shared model drives it."""

    def __init__(self, outputs: list[dict[str, Any]]) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.last_stream_name = ""
        self.stream_index = 0
        for output in outputs:
            self.add(output)

    def add(self, output: dict[str, Any]) -> None:
        output = dict(output)
        if output["output_type"] == "stream":
            if output["name"] == self.last_stream_name and self.outputs:
                last = self.outputs[-1]
                last["text"], self.stream_index = process_text(
                    self.stream_index, output["text"], last["text"]
                )
                return
            output["text"], self.stream_index = process_text(0, output["text"])
        self.outputs.append(output)
        self.last_stream_name = output["name"] if output["output_type"] == "stream" else ""

    def remove_stream_output(self, units: int) -> None:
        """Removes the last `units` characters (pycrdt counts UTF-8 bytes: they must be
        whole characters at the end, or a browser would have split one)."""
        last = self.outputs[-1]
        raw = last["text"].encode("utf-8")
        last["text"] = raw[: len(raw) - units].decode("utf-8")  # strict: a split raises

    def append_stream_output(self, text: str) -> None:
        self.outputs[-1]["text"] += text


class JupyterLabPeer:
    """One peer: an `OutputArea` per cell of `notebook`, kept up to date from its events."""

    def __init__(self, notebook: YNotebook) -> None:
        self.areas = {cell["id"]: OutputArea(cell.get("outputs", [])) for cell in notebook.ycells.to_py()}
        self._notebook = notebook
        self._subscription = notebook.ycells.observe_deep(self._on_events)

    def shown(self, cell_id: str) -> list[dict[str, Any]]:
        return self.areas[cell_id].outputs

    def _on_events(self, events: list[Any]) -> None:
        by_cell: dict[int, list[Any]] = {}
        for event in events:
            if event.path:
                by_cell.setdefault(event.path[0], []).append(event)
        for index, cell_events in by_cell.items():
            cell_id = self._notebook.ycells[index].get("id")
            area = self.areas.setdefault(cell_id, OutputArea([]))
            text_events = [
                e for e in cell_events if len(e.path) == 4 and e.path[1] == "outputs" and e.path[3] == "text"
            ]
            if text_events:
                for change in text_events[0].delta:
                    if "delete" in change:
                        area.remove_stream_output(change["delete"])
                    if "insert" in change:
                        area.append_stream_output(str(change["insert"]))
            array_events = [e for e in cell_events if e.path == [index, "outputs"]]
            if array_events:
                retain = 0
                for change in array_events[0].delta:
                    retain += change.get("retain", 0)
                    for _ in range(change.get("delete", 0)):
                        del area.outputs[retain]
                    for output in change.get("insert", []):
                        area.add(output.to_py())

"""The output mirror (jupyter_collab/execution/outputs.py): JupyterLab's output semantics
on kernel messages, observed through `mirror.outputs`.

GOLDEN was generated once by running JupyterLab 4.6.6's own `Private.processText`
(labextension/node_modules/@jupyterlab/outputarea/lib/model.js, extracted and evaluated
under node 20) on each chunk sequence the way `OutputAreaModel._add`/`addText` feed one
stream output, and pasted here as data. Only text without astral characters: there
JupyterLab counts UTF-16 units and can split an emoji, which the mirror deliberately does not.
"""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_collab.execution.displays import DisplayIndex
from jupyter_collab.execution.outputs import NOTE_PREFIX, OutputMirror
from jupyter_collab.execution.streams import StreamText

from .jlab_reader import process_text

GOLDEN: list[tuple[list[str], str]] = [
    (["hello"], "hello"),
    (["a", "b", "c"], "abc"),
    (["line1\n", "line2\n"], "line1\nline2\n"),
    (["10%\r", "20%\r", "100%\n", "done\n"], "100%\ndone\n"),
    (
        ["\r  0%|          | 0/10", "\r 50%|█████     | 5/10", "\r100%|██████████| 10/10", "\n"],
        "100%|██████████| 10/10\n",
    ),
    (["abc\rX"], "Xbc"),
    (["abc\rX\n"], "Xbc\n"),
    (["abc\x08"], "ab"),
    (["abc\x08d"], "abd"),
    (["ab\x08\x08X"], "X"),
    (["a\n\x08b"], "a\nb"),
    (["\x08x"], "x"),
    (["abc", "\rxy", "z\n", "12\r3"], "xyz\n32"),
    (["a\r\nb"], "a\nb"),
    (["abc\r", "d"], "dbc"),
    (["12345\r", "ab\n"], "ab345\n"),
    (["x\x08\x08\x08y"], "y"),
    (["ab\rc\x08d"], "d"),
    (["\r\r\n\n"], "\n\n"),
    (["a\nb\rc\nd"], "a\nc\nd"),
    (["", "a"], "a"),
    (["x\nabc\r\x08"], "x\nabc"),
    (["abcd\r", "xy\x08z"], "xz"),
    (["héllo █▌\r", "wörld\n"], "wörld █▌\n"),
    (["abc\rd", "e\n", "f"], "dec\nf"),
    (["loading", ".", ".", "\x08\x08\x08   \rok\n"], "okadin   \n"),
    (["a\rb\rc\rd"], "d"),
    (["one\ntwo\rTHREE\n"], "one\nTHREE\n"),
]


@pytest.mark.parametrize(("chunks", "expected"), GOLDEN)
def test_stream_text_matches_jupyterlab(chunks: list[str], expected: str):
    stream = StreamText()
    for chunk in chunks:
        stream.feed(chunk)
    assert stream.text() == expected
    assert stream.size == len(expected.encode("utf-8"))


@pytest.mark.parametrize(("chunks", "expected"), GOLDEN)
def test_the_oracle_port_matches_jupyterlab(chunks: list[str], expected: str):
    text, index = process_text(0, chunks[0])
    for chunk in chunks[1:]:
        text, index = process_text(index, chunk, text)
    assert text == expected


def test_astral_characters_are_never_split():
    stream = StreamText()
    stream.feed("😀😀x\r")
    stream.feed("ab")
    assert stream.text() == "abx"  # JupyterLab: "ab" + a lone surrogate + "😀x"
    stream.feed("\b")  # drops the "b" before the cursor and the "x" under it
    assert stream.text() == "a"


class Cells:
    """Mirrors sharing one display index, as the cells of one kernel and room do."""

    def __init__(self, limit: int = 1 << 20) -> None:
        self.foreign = 0
        self.displays = DisplayIndex(on_foreign=self._count)
        self.limit = limit
        self.changes = 0

    def _count(self) -> None:
        self.foreign += 1

    def mirror(self, cell_id: str) -> OutputMirror:
        return OutputMirror(cell_id, limit=self.limit, displays=self.displays, on_change=self._changed)

    def _changed(self) -> None:
        self.changes += 1


def stream(name: str, text: str) -> tuple[str, dict[str, Any]]:
    return "stream", {"name": name, "text": text}


def display(text: str, display_id: str | None = None, update: bool = False) -> tuple[str, dict[str, Any]]:
    content: dict[str, Any] = {"data": {"text/plain": text}, "metadata": {}}
    if display_id:
        content["transient"] = {"display_id": display_id}
    return ("update_display_data" if update else "display_data"), content


def feed(mirror: OutputMirror, *messages: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    for msg_type, content in messages:
        mirror.handle(msg_type, content)
    return mirror.outputs


def texts(outputs: list[dict[str, Any]]) -> list[str]:
    return [o.get("text") or o.get("data", {}).get("text/plain") or o.get("ename") for o in outputs]


def test_consecutive_chunks_of_one_stream_merge_and_other_outputs_split_them():
    mirror = Cells().mirror("a")
    outputs = feed(
        mirror,
        stream("stdout", "1\n"),
        stream("stdout", "2\n"),
        stream("stderr", "oops\n"),
        stream("stdout", "3\n"),
        display("D"),
        stream("stdout", "4\n"),
    )
    assert [(o["output_type"], o.get("name")) for o in outputs] == [
        ("stream", "stdout"),
        ("stream", "stderr"),
        ("stream", "stdout"),
        ("display_data", None),
        ("stream", "stdout"),
    ]
    assert texts(outputs) == ["1\n2\n", "oops\n", "3\n", "D", "4\n"]


def test_a_progress_bar_redraws_in_place():
    mirror = Cells().mirror("a")
    for percent in range(0, 101, 10):
        mirror.handle(*stream("stderr", f"\r{percent:3d}%|{'█' * (percent // 10):10s}|"))
    mirror.handle(*stream("stderr", "\n"))
    assert mirror.outputs == [{"output_type": "stream", "name": "stderr", "text": "100%|██████████|\n"}]


def test_clear_output_now_and_at_the_next_output():
    mirror = Cells().mirror("a")
    assert feed(mirror, stream("stdout", "a"), ("clear_output", {"wait": False})) == []
    feed(mirror, stream("stdout", "b"), ("clear_output", {"wait": True}))
    assert texts(mirror.outputs) == ["b"]  # kept until something new comes
    assert texts(feed(mirror, stream("stdout", "c"))) == ["c"]
    feed(mirror, display("x"), ("clear_output", {"wait": True}), ("clear_output", {"wait": True}))
    assert texts(feed(mirror, display("y"))) == ["y"]


def test_display_updates_replace_by_id_in_the_middle_of_the_list():
    mirror = Cells().mirror("a")
    feed(mirror, stream("stdout", "before\n"), display("v1", "bar"), stream("stdout", "after\n"))
    assert texts(feed(mirror, display("v2", "bar", update=True))) == ["before\n", "v2", "after\n"]
    # An update never appends, even for an id never shown
    assert texts(feed(mirror, display("zz", "other", update=True))) == ["before\n", "v2", "after\n"]
    # display_data with a known id updates every output with it, then is appended
    assert texts(feed(mirror, display("v3", "bar"))) == ["before\n", "v3", "after\n", "v3"]
    assert mirror.outputs[1] == {"output_type": "display_data", "data": {"text/plain": "v3"}, "metadata": {}}


def test_display_updates_reach_other_cells():
    cells = Cells()
    first, second = cells.mirror("a"), cells.mirror("b")
    feed(first, display("v1", "bar"))
    feed(second, display("v2", "bar", update=True))
    assert texts(first.outputs) == ["v2"]  # a live cell is updated in its mirror
    cells.displays.retire(first)
    feed(second, display("v3", "bar", update=True))
    [update] = cells.displays.take_foreign()  # a finished one through the document
    assert (update.cell_id, update.position, update.output["data"]) == ("a", 0, {"text/plain": "v3"})
    assert cells.foreign == 1
    cells.mirror("a")  # a re-run forgets where the old outputs were
    feed(second, display("v4", "bar", update=True))
    assert cells.displays.take_foreign() == []


def test_execute_result_and_error_are_nbformat_outputs():
    mirror = Cells().mirror("a")
    feed(
        mirror,
        ("execute_result", {"execution_count": 3, "data": {"text/plain": "42"}, "metadata": {}}),
        ("error", {"ename": "ValueError", "evalue": "bad", "traceback": ["Trace", "ValueError: bad"]}),
        ("status", {"execution_state": "idle"}),
    )
    assert mirror.outputs == [
        {"output_type": "execute_result", "execution_count": 3, "data": {"text/plain": "42"}, "metadata": {}},
        {
            "output_type": "error",
            "ename": "ValueError",
            "evalue": "bad",
            "traceback": ["Trace", "ValueError: bad"],
        },
    ]


def test_answered_input_and_pages():
    mirror = Cells().mirror("a")
    mirror.add_input("Name: ", "Ada", password=False)
    mirror.add_input("Password: ", "secret", password=True)
    mirror.add_page({"text/plain": "help text"})
    assert texts(mirror.outputs) == ["Name: Ada\nPassword: ········\n", "help text"]


def test_the_size_bound_keeps_the_head_and_a_note():
    mirror = Cells(limit=1000).mirror("a")
    for index in range(200):
        mirror.handle(*stream("stdout", f"line {index:03d}\n"))  # 9 bytes each
    feed(mirror, display("x" * 10))
    mirror.handle("error", {"ename": "E", "evalue": "", "traceback": ["t"]})
    *kept, error, note = mirror.outputs
    text = kept[0]["text"]
    assert len(text.encode()) == 1000 and text.startswith("line 000\nline 001\n")
    assert error["ename"] == "E"  # errors are kept past the bound, before the note
    assert note["output_type"] == "display_data"
    message = note["data"]["text/plain"]
    assert message.startswith(NOTE_PREFIX)
    assert "89 more lines and 1 more outputs" in message and "1000 bytes" in message
    # A clear starts over: no note, room again
    feed(mirror, ("clear_output", {"wait": False}), stream("stdout", "fresh\n"))
    assert texts(mirror.outputs) == ["fresh\n"]


def test_the_bound_cuts_whole_characters_and_rich_outputs_past_it_are_counted():
    mirror = Cells(limit=10).mirror("a")
    mirror.handle(*stream("stdout", "abcdefghi😀tail"))
    assert mirror.outputs[0]["text"] == "abcdefghi"
    mirror = Cells(limit=10).mirror("b")
    feed(mirror, display("12345"), display("67890123"), display("x"))
    assert texts(mirror.outputs)[0] == "12345" and "2 more outputs (9 bytes)" in texts(mirror.outputs)[1]


def test_tracebacks_are_bounded():
    mirror = Cells().mirror("a")
    mirror.handle("error", {"ename": "E", "evalue": "v", "traceback": ["x" * 1024] * 100})
    traceback = mirror.outputs[0]["traceback"]
    assert len(traceback) == 65 and traceback[-1].startswith("[jupyter-collab] traceback cut")

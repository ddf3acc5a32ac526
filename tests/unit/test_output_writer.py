"""The output writer (jupyter_collab/execution/writer.py): coalesced writes of the mirrors'
changes into a YNotebook, in shapes a JupyterLab peer applies correctly. Every test checks
the document against a simulated JupyterLab peer (`jlab_reader.JupyterLabPeer`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jupyter_ydoc import YNotebook

from jupyter_collab.execution.displays import canonical
from jupyter_collab.execution.writer import OutputWriter

from .jlab_reader import JupyterLabPeer


class FakeClock:
    """`loop.time` and `loop.call_later`, advanced by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[list[Any]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self._timers.append([timer.when, len(self._timers), timer])
        return timer

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = sorted((t for t in self._timers if t[0] <= end and not t[2].cancelled), key=lambda t: t[:2])
            if not due:
                break
            self._timers.remove(due[0])
            self.now = max(self.now, due[0][0])
            due[0][2].callback()
        self.now = end


class FakeTimer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class Setup:
    def __init__(self, cells: int = 2, limit: int = 1 << 20) -> None:
        self.notebook = YNotebook()
        for index in range(cells):
            self.notebook.append_cell(
                {
                    "cell_type": "code",
                    "id": f"c{index}",
                    "source": "",
                    "metadata": {},
                    "outputs": [],
                    "execution_count": None,
                }
            )
        self.peer = JupyterLabPeer(self.notebook)
        self.clock = FakeClock()
        self.writes: list[float] = []
        self.writer = OutputWriter(
            self.apply, clock=self.clock.time, call_later=self.clock.call_later, limit=limit
        )

    def apply(self, operation: Callable[[YNotebook], None]) -> None:
        self.writes.append(self.clock.now)
        with self.notebook.ydoc.transaction():
            operation(self.notebook)

    def document(self, cell_id: str) -> list[dict[str, Any]]:
        for cell in self.notebook.ycells.to_py():
            if cell["id"] == cell_id:
                return [canonical(o) for o in cell["outputs"]]
        raise KeyError(cell_id)

    def check(self, cell_id: str) -> list[dict[str, Any]]:
        """The document's outputs, after checking that a JupyterLab peer shows the same."""
        outputs = self.document(cell_id)
        assert [canonical(o) for o in self.peer.shown(cell_id)] == outputs
        return outputs


def stream(text: str, name: str = "stdout") -> tuple[str, dict[str, Any]]:
    return "stream", {"name": name, "text": text}


def display(text: str, display_id: str, update: bool = False) -> tuple[str, dict[str, Any]]:
    content = {"data": {"text/plain": text}, "metadata": {}, "transient": {"display_id": display_id}}
    return ("update_display_data" if update else "display_data"), content


def texts(outputs: list[dict[str, Any]]) -> list[str]:
    return [o.get("text") or o.get("data", {}).get("text/plain") or o.get("ename") for o in outputs]


def test_the_first_change_goes_at_once_then_one_write_per_window():
    setup = Setup()
    mirror = setup.writer.start("c0")
    mirror.handle(*stream("a\n"))
    setup.clock.advance(0)
    assert setup.writes == [0.0]  # the next loop turn, no delay
    for step in range(1, 10):  # a message every 10 ms
        setup.clock.advance(0.01)
        mirror.handle(*stream(f"{step}\n"))
    setup.clock.advance(0.2)
    assert setup.writes == [0.0, 0.05, 0.1]
    setup.clock.advance(1)
    mirror.handle(*stream("late\n"))  # after a pause: at once again
    setup.clock.advance(0)
    assert setup.writes[-1] == setup.clock.now
    assert texts(setup.check("c0")) == ["a\n" + "".join(f"{i}\n" for i in range(1, 10)) + "late\n"]


def test_a_progress_bar_is_a_tail_edit_that_peers_apply():
    setup = Setup()
    mirror = setup.writer.start("c0")
    mirror.handle(*stream("downloading\n", "stderr"))
    for percent in range(0, 101, 5):
        mirror.handle(
            *stream(f"\r{percent:3d}% {'█' * (percent // 10)}{'▌' if percent % 10 else ''} é 😀", "stderr")
        )
        setup.clock.advance(0.03)
        assert len(setup.check("c0")) == 1
    mirror.handle(*stream("\ndone\n", "stderr"))
    setup.writer.finish("c0")
    assert texts(setup.check("c0")) == ["downloading\n100% ██████████ é 😀\ndone\n"]


def test_streams_merge_and_other_outputs_interleave():
    setup = Setup()
    mirror = setup.writer.start("c0")
    for msg in [
        stream("1\n"),
        stream("2\n"),
        stream("e\n", "stderr"),
        stream("3"),
        ("execute_result", {"execution_count": 7, "data": {"text/plain": "7"}, "metadata": {}}),
    ]:
        mirror.handle(*msg)
        setup.clock.advance(0.02)
    mirror.handle("error", {"ename": "E", "evalue": "x", "traceback": ["tb"]})
    setup.writer.finish("c0")
    outputs = setup.check("c0")
    assert texts(outputs) == ["1\n2\n", "e\n", "3", "7", "E"]
    assert outputs[3] == {
        "output_type": "execute_result",
        "execution_count": 7,
        "data": {"text/plain": "7"},
        "metadata": {},
    }


def test_clear_output_with_and_without_wait():
    setup = Setup()
    mirror = setup.writer.start("c0")
    for index in range(5):
        mirror.handle("clear_output", {"wait": True})
        mirror.handle(*stream(f"frame {index}\n"))
        setup.clock.advance(0.02)
        assert texts(setup.check("c0")) == [f"frame {index}\n"] or index % 2  # within a window
    setup.clock.advance(0.1)
    assert texts(setup.check("c0")) == ["frame 4\n"]
    mirror.handle("clear_output", {"wait": False})
    setup.writer.finish("c0")
    assert setup.check("c0") == []


def test_a_display_update_in_the_middle_is_rewritten_from_there():
    setup = Setup()
    mirror = setup.writer.start("c0")
    for msg in [stream("before\n"), display("v1", "bar"), stream("after\n")]:
        mirror.handle(*msg)
    setup.clock.advance(0.1)
    mirror.handle(*display("v2", "bar", update=True))
    mirror.handle(*stream("more\n"))  # the tail stream, re-inserted, carries this too
    setup.clock.advance(0.1)
    assert texts(setup.check("c0")) == ["before\n", "v2", "after\nmore\n"]
    mirror.handle(*stream("end\n"))  # and text edits go on after the re-insert
    setup.writer.finish("c0")
    assert texts(setup.check("c0")) == ["before\n", "v2", "after\nmore\nend\n"]


def test_display_updates_reach_a_finished_cell_in_the_document():
    setup = Setup()
    first = setup.writer.start("c0")
    first.handle(*display("v1", "bar"))
    first.handle(*stream("tail\n"))
    setup.writer.finish("c0")
    second = setup.writer.start("c1")
    second.handle(*display("v2", "bar", update=True))
    second.handle(*stream("own\n"))
    setup.clock.advance(0.1)
    assert texts(setup.check("c0")) == ["v2", "tail\n"]
    assert texts(setup.check("c1")) == ["own\n"]
    second.handle(*display("v3", "bar"))  # a display with the id: updates, then appends
    setup.writer.finish("c1")
    assert texts(setup.check("c0")) == ["v3", "tail\n"]
    assert texts(setup.check("c1")) == ["own\n", "v3"]


def test_a_finished_cell_changed_by_someone_is_left_alone():
    setup = Setup()
    first = setup.writer.start("c0")
    first.handle(*display("v1", "bar"))
    setup.writer.finish("c0")
    with setup.notebook.ydoc.transaction():
        setup.notebook.ycells[0]["outputs"].clear()
    second = setup.writer.start("c1")
    second.handle(*display("v2", "bar", update=True))
    setup.writer.finish("c1")
    assert setup.check("c0") == []
    assert not setup.writer.displays.knows("bar")


def test_a_moved_cell_gets_its_outputs_rewritten():
    setup = Setup(cells=3)
    mirror = setup.writer.start("c0")
    mirror.handle(*stream("one\n"))
    setup.clock.advance(0.1)
    mirror.handle(*stream("two\n"))  # not yet written when the cell moves
    with setup.notebook.ydoc.transaction():  # JupyterLab moves by delete and re-insert
        cell = setup.notebook.ycells[0].to_py()
        del setup.notebook.ycells[0]
        setup.notebook.ycells.insert(2, setup.notebook.create_ycell(cell))
    setup.peer = JupyterLabPeer(setup.notebook)  # a peer that loads the moved cell
    mirror.handle(*stream("three\n"))
    setup.writer.finish("c0")
    assert texts(setup.check("c0")) == ["one\ntwo\nthree\n"]


def test_a_deleted_cell_loses_its_outputs_quietly():
    setup = Setup()
    mirror = setup.writer.start("c0")
    with setup.notebook.ydoc.transaction():
        del setup.notebook.ycells[0]
    mirror.handle(*stream("lost\n"))
    setup.writer.finish("c0")
    assert texts(setup.check("c1")) == []


def test_the_size_bound_note_in_the_document():
    setup = Setup(limit=100)
    mirror = setup.writer.start("c0")
    for index in range(50):
        mirror.handle(*stream(f"line {index:02d} é\n"))  # 11 bytes
        setup.clock.advance(0.02)
    setup.writer.finish("c0")
    text, note = texts(setup.check("c0"))
    assert len(text.encode()) <= 100 and text.startswith("line 00 é\nline 01 é\n")
    assert note.startswith("[jupyter-collab] output truncated: 41 more lines")


def test_multibyte_text_is_never_split():
    """pycrdt edits count UTF-8 bytes and browsers UTF-16 units: the tail edits start on
    character boundaries, so the peer (which decodes strictly) and the document agree."""
    setup = Setup()
    mirror = setup.writer.start("c0")
    for frame in ["😀é😀", "😀ü", "a😀", "é", "\b😀\b", "ü😀ß\n", "\r日本"]:
        mirror.handle(*stream("\r" + frame if not frame.startswith("\r") else frame))
        setup.clock.advance(0.06)  # each frame its own write
        assert setup.check("c0") == mirror.outputs
    setup.writer.finish("c0")
    assert texts(setup.check("c0")) == ["ü😀ß\n日本"]

"""The output writer's Yjs updates as JupyterLab's JavaScript sees them
(docs/design-execution.md §7 and §16 slice 2).

The writer (jupyter_collab/execution/writer.py) edits stream texts through pycrdt, whose
offsets count UTF-8 bytes, while yjs counts UTF-16 units; and JupyterLab peers do not apply
output events literally (`CodeCellModel._onSharedModelChanged`). The unit tests check the
writer against a Python re-implementation of that reader (tests/unit/jlab_reader.py); this
test checks it against the real thing. Python drives the writer through scenarios, records
every transaction's update and the document's outputs after it, and one node process
(tests/js/yjs_replay.mjs) replays the updates with labextension/node_modules:
- into a plain `Y.Doc` of yjs: its JSON must equal the Python document's, step by step;
- into a `YNotebook` of @jupyter/ydoc with a `CodeCellModel` of @jupyterlab/cells per cell:
  what the models' output areas hold must equal it too, step by step.
No text may hold half a character on the JavaScript side.

Skipped only when node or labextension/node_modules/yjs is missing (the editable install
builds labextension/ with its node_modules).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_ydoc import YNotebook

from jupyter_collab.execution.displays import canonical
from jupyter_collab.execution.outputs import OutputMirror
from jupyter_collab.execution.writer import OutputWriter

from .unit.jlab_reader import JupyterLabPeer

LABEXTENSION = Path(__file__).resolve().parent.parent / "labextension"
REPLAY = Path(__file__).resolve().parent / "js" / "yjs_replay.mjs"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not on PATH (JupyterLab's yjs runs under node)"),
    pytest.mark.skipif(
        not (LABEXTENSION / "node_modules" / "yjs" / "package.json").is_file(),
        reason=f"{LABEXTENSION}/node_modules/yjs is missing (the editable install builds labextension/)",
    ),
]

Cells = list[dict[str, Any]]  # [{"id", "outputs"}] in document order


class Run:
    """A notebook, a writer on a hand-driven clock, and a record of every transaction: its
    update and the outputs the Python document has after it."""

    def __init__(self, cells: int = 2, limit: int = 1 << 20) -> None:
        self.notebook = YNotebook()
        for index in range(cells):
            self.notebook.append_cell(
                {"cell_type": "code", "id": f"c{index}", "source": "", "metadata": {}, "outputs": []}
            )
        self.now = 0.0
        self.timer: tuple[float, Callable[[], None]] | None = None  # the writer has one at most
        self.writer = OutputWriter(
            self.transact, clock=lambda: self.now, call_later=self._call_later, limit=limit
        )
        self.peer = JupyterLabPeer(self.notebook)  # the Python oracle, compared as well
        self.steps: list[list[bytes]] = [[self.notebook.ydoc.get_update()]]
        self.expected: list[Cells] = [self.cells()]
        self.oracle: list[Cells] = [self.shown()]
        self._pending: list[bytes] = []
        self._subscription = self.notebook.ydoc.observe(lambda event: self._pending.append(event.update))

    def _call_later(self, delay: float, callback: Callable[[], None]) -> Run:
        self.timer = (self.now + delay, callback)
        return self  # its handle: `cancel` cancels the one timer there is

    def cancel(self) -> None:
        self.timer = None

    def advance(self, seconds: float) -> None:
        """Let time pass: the writer's timer fires when due."""
        end = self.now + seconds
        while self.timer is not None and self.timer[0] <= end:
            (when, callback), self.timer = self.timer, None
            self.now = max(self.now, when)
            callback()
        self.now = end

    def transact(self, operation: Callable[[YNotebook], None]) -> None:
        """One transaction (the writer's `apply`, or someone else's edit), recorded."""
        with self.notebook.ydoc.transaction():
            operation(self.notebook)
        self.steps.append(self._pending)
        self._pending = []
        self.expected.append(self.cells())
        self.oracle.append(self.shown())

    def cells(self) -> Cells:
        return [
            {"id": cell["id"], "outputs": canonical(cell.get("outputs", []))}
            for cell in self.notebook.ycells.to_py()
        ]

    def shown(self) -> Cells:
        return [
            {"id": cell["id"], "outputs": canonical(self.peer.shown(cell["id"]))}
            for cell in self.notebook.ycells.to_py()
        ]

    def done(self, *mirrors: OutputMirror) -> Run:
        """Ends a scenario: the document holds what each mirror says (the writer's own
        correctness is the unit tests'; this keeps the scenarios from going degenerate)."""
        document = {cell["id"]: cell["outputs"] for cell in self.expected[-1]}
        for mirror in mirrors:
            assert document[mirror.cell_id] == canonical(mirror.outputs), mirror.cell_id
        return self

    def move(self, source: int, target: int) -> None:
        """As JupyterLab moves a cell: delete it and insert a copy, in one transaction."""

        def operation(notebook: YNotebook) -> None:
            cell = notebook.ycells[source].to_py()
            del notebook.ycells[source]
            notebook.ycells.insert(target, notebook.create_ycell(cell))

        self.transact(operation)
        self.notebook.ycells.unobserve(self.peer._subscription)
        self.peer = JupyterLabPeer(self.notebook)  # JupyterLab makes a new model for it


def stream(text: str, name: str = "stdout") -> tuple[str, dict[str, Any]]:
    return "stream", {"name": name, "text": text}


def display(text: str, display_id: str, update: bool = False) -> tuple[str, dict[str, Any]]:
    content = {"data": {"text/plain": text}, "metadata": {}, "transient": {"display_id": display_id}}
    return ("update_display_data" if update else "display_data"), content


def progress_bar() -> Run:
    """A tqdm-like bar on stderr: every frame `\\r`-redraws the line, with multi-byte blocks,
    an accent and an emoji (4 UTF-8 bytes, 2 UTF-16 units) whose offsets shift per frame."""
    run = Run()
    mirror = run.writer.start("c0")
    mirror.handle(*stream("téléchargement 📦\n", "stderr"))
    for step in range(41):
        percent = step * 2.5
        blocks = "█" * int(percent // 10) + ("▌" if percent % 10 >= 5 else "")
        mirror.handle(*stream(f"\r{percent:5.1f}%|{blocks:<10}| {step}/40 é 😀{'🚀' * (step % 3)}", "stderr"))
        run.advance(0.02)  # 2 to 3 frames per write
    mirror.handle(*stream("\nfini ✅\n", "stderr"))
    mirror.handle("execute_result", {"execution_count": 3, "data": {"text/plain": "'ok'"}, "metadata": {}})
    run.writer.finish("c0")
    return run.done(mirror)


LINES = [
    "plain ascii line",
    "accents: é à ü ß ç ñ, combining: e\u0301 a\u0308",
    "CJK 日本語のテキスト 中文 한국어",
    "emoji 😀🎉🚀 family 👩‍👩‍👧 flag 🇫🇷 skin 👍🏽",
    "astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠜎𠜱 and RTL مرحبا",
]


def long_stream() -> Run:
    """Hundreds of chunks cut anywhere between characters (mid-line, mid-word, between the
    parts of a grapheme cluster), stdout and stderr interleaved, some `\\r` and `\\b` edits
    over multi-byte text, written in coalesced batches."""
    run = Run()
    mirror = run.writer.start("c0")
    text = "".join(f"{index:03d} {LINES[index % len(LINES)]}\n" for index in range(120))
    position, size = 0, 1
    while position < len(text):
        mirror.handle(*stream(text[position : position + size]))
        position += size
        size = size % 23 + 1
        run.advance(0.01)
        if position % 97 < size:  # now and then a different stream in between
            mirror.handle(*stream(f"⚠ warning {position} ⚠\n", "stderr"))
    for chunk in ["日本", "\r中文😀", "\b\b漢", "字🎉\b", "\rü", "\n"]:
        mirror.handle(*stream(chunk))
        run.advance(0.06)  # each its own write
    run.writer.finish("c0")
    return run.done(mirror)


def clear_wait() -> Run:
    """An animation with `clear_output(wait=True)`, then `clear_output()` and a last frame."""
    run = Run()
    mirror = run.writer.start("c0")
    for frame in range(12):
        mirror.handle("clear_output", {"wait": True})
        mirror.handle(*stream(f"frame {frame} {'🌕🌖🌗🌘🌑🌒🌓🌔'[frame % 8]} 進捗 {'▓' * frame}\n"))
        if frame % 3 == 0:
            mirror.handle(*display(f"<b>{frame}</b> ✓", f"frame-{frame}"))
        run.advance(0.03)
    mirror.handle("clear_output", {"wait": False})
    run.advance(0.1)
    mirror.handle(*stream("最後 🏁\n"))
    run.writer.finish("c0")
    return run.done(mirror)


def display_update() -> Run:
    """A display updated in the middle of the outputs (rewritten from there), stream text
    going on after it, and the display updated again from another cell after the first
    finished."""
    run = Run()
    first = run.writer.start("c0")
    for msg in [stream("avant ⏳\n"), display("v1 😀", "bar"), stream("après 日本\n")]:
        first.handle(*msg)
    run.advance(0.1)
    first.handle(*display("v2 🎉 更新", "bar", update=True))
    first.handle(*stream("encore ü\n"))
    run.advance(0.1)
    first.handle(*stream("fin 🏁\n"))
    run.writer.finish("c0")
    second = run.writer.start("c1")
    second.handle(*stream("own 🙂\n"))
    second.handle(*display("v3 🚀", "bar", update=True))
    run.advance(0.1)
    second.handle(*display("v4 ✅", "bar"))  # updates c0, then appends to c1
    run.writer.finish("c1")
    shown = [output.get("text") or output["data"]["text/plain"] for output in run.expected[-1][0]["outputs"]]
    assert shown == ["avant ⏳\n", "v4 ✅", "après 日本\nencore ü\nfin 🏁\n"]
    return run.done(second)


def truncated() -> Run:
    """Past the size bound: the kept text is cut between characters, one note says what was
    dropped, and an error is still kept (before the note)."""
    run = Run(limit=300)
    mirror = run.writer.start("c0")
    for index in range(60):
        mirror.handle(*stream(f"ligne {index:02d} é😀日\n"))  # 20 bytes, 15 UTF-16 units
        run.advance(0.02)
    mirror.handle(*display("dropped 📉", "d"))
    mirror.handle("error", {"ename": "ValueError", "evalue": "mauvais ✗", "traceback": ["Traceback 🐍", "…"]})
    run.writer.finish("c0")
    return run.done(mirror)


def moved() -> Run:
    """A running cell moved by a peer (deleted and inserted again) between writes, and
    again with text written but not yet flushed: its outputs are rewritten whole."""
    run = Run(cells=3)
    mirror = run.writer.start("c0")
    mirror.handle(*stream("un 1️⃣\n"))
    run.advance(0.1)
    mirror.handle(*stream("deux ", "stdout"))
    run.move(0, 2)
    mirror.handle(*stream("2️⃣\ntrois 日本\n"))
    run.advance(0.1)
    mirror.handle(*stream("\rquatre 🍀"))
    run.advance(0.1)
    mirror.handle(*stream("\rcinq"))
    run.move(2, 1)
    run.writer.finish("c0")
    return run.done(mirror)


SCENARIOS: dict[str, Callable[[], Run]] = {
    "progress_bar": progress_bar,
    "long_stream": long_stream,
    "clear_wait": clear_wait,
    "display_update": display_update,
    "truncated": truncated,
    "moved": moved,
}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Run], dict[str, Any]]]:
    """Every scenario run in Python, and replayed by one node process."""
    runs = {name: scenario() for name, scenario in SCENARIOS.items()}
    directory = tmp_path_factory.mktemp("yjs")
    source, result = directory / "updates.json", directory / "replayed.json"
    steps = {
        name: [[base64.b64encode(update).decode() for update in step] for step in run.steps]
        for name, run in runs.items()
    }
    source.write_text(json.dumps({"scenarios": steps}))
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(REPLAY), str(LABEXTENSION), str(source), str(result)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"node failed:\n{done.stdout}\n{done.stderr}"
    yield runs, json.loads(result.read_text())


def assert_same(view: str, actual: list[Cells], run: Run) -> None:
    """`actual` (one list of cells per transaction) is the Python document's, step by step;
    else fail at the first transaction where they differ, showing the cells that differ."""
    assert len(actual) == len(run.expected), f"{view}: one state per transaction"
    for step, (want, got) in enumerate(zip(run.expected, canonical(actual), strict=True)):
        if got == want:
            continue
        if [cell["id"] for cell in got] == [cell["id"] for cell in want]:  # show only those
            want, got = zip(*[(w, g) for w, g in zip(want, got, strict=True) if w != g], strict=True)
        pytest.fail(
            f"{view} differs after transaction {step} of {len(run.expected) - 1} "
            f"({sum(map(len, run.steps[step]))} update bytes):\n"
            f"  Python: {json.dumps(want, ensure_ascii=False)}\n"
            f"  {view}: {json.dumps(got, ensure_ascii=False)}"
        )


def test_the_yjs_jupyterlab_bundles(replayed: tuple[dict[str, Run], dict[str, Any]]) -> None:
    _, result = replayed
    assert result["yjs"].startswith("13.")


@pytest.mark.parametrize("name", SCENARIOS)
def test_yjs_documents_match(replayed: tuple[dict[str, Run], dict[str, Any]], name: str) -> None:
    """A plain Y.Doc has the Python document's outputs after every transaction, every
    character whole."""
    runs, result = replayed
    run, replay = runs[name], result["scenarios"][name]
    assert len(run.steps) > 3 and all(len(step) == 1 for step in run.steps)  # nothing empty
    assert not replay["split"], f"characters split in JavaScript: {replay['split'][:3]}"
    assert_same("yjs Y.Doc", replay["plain"], run)


@pytest.mark.parametrize("name", SCENARIOS)
def test_jupyterlab_models_match(replayed: tuple[dict[str, Run], dict[str, Any]], name: str) -> None:
    """JupyterLab's CodeCellModels, fed the events as in a browser, show the Python
    document's outputs after every transaction; and so does the Python oracle of the unit
    tests (tests/unit/jlab_reader.py), which this keeps honest."""
    runs, result = replayed
    run, replay = runs[name], result["scenarios"][name]
    assert replay["lab_error"] is None, replay["lab_error"]
    assert_same("JupyterLab CodeCellModels", replay["lab"], run)
    assert_same("Python oracle (jlab_reader)", run.oracle, run)

"""Our JupyterLab front end (labextension/) in a real headless Chromium, several users at once."""

from __future__ import annotations

from ..conftest import write_notebook
from ..helpers import disk_sources, eventually
from .conftest import open_document, screenshot

CELL = ".jp-Notebook .jp-CodeCell .cm-content"
READY = ".jp-NotebookPanel-toolbar .jp-collab-status-connected"
SHOWS_TEXT = (
    "m => [...document.querySelectorAll('.jp-Notebook .cm-content')].some(e => e.innerText.includes(m))"
)


async def test_two_users_type_and_see_each_other(make_lab, browser):
    lab = make_lab("ours")
    path = write_notebook(lab.root, "shared.ipynb", sources=["x = 1", "y = 2"])
    alice = await open_document(browser, lab, "alice", path, selector=READY)
    bob = await open_document(browser, lab, "bob", path, selector=READY)
    await alice.locator(CELL).first.click()
    await alice.keyboard.press("Control+End")
    await alice.keyboard.type("\n# typed by alice", delay=10)
    await bob.wait_for_function(SHOWS_TEXT, arg="# typed by alice", timeout=15_000)
    await alice.wait_for_selector('.jp-collab-avatars [data-username="bob"]', timeout=15_000)
    await bob.wait_for_selector('.jp-collab-avatars [data-username="alice"]', timeout=15_000)
    await bob.wait_for_selector(".jp-collab-caretLabel >> text=Alice", timeout=15_000)
    await screenshot(alice, "ours-alice.png")
    await screenshot(bob, "ours-bob.png")
    await eventually(lambda: disk_sources(lab, path) == ["x = 1\n# typed by alice", "y = 2"])

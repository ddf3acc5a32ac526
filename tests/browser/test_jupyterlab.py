"""JupyterLab's own collaboration front end (the Jupyter project's @jupyter/docprovider)
against our server, in a real headless Chromium, with our front end disabled: two users
type in one notebook and see each other's edits.

This is the wire-compatibility promise: JupyterLab's client works against us unchanged.
"""

from __future__ import annotations

import pytest

from ..helpers import disk_sources, eventually, write_notebook
from .conftest import CELL, SHOWS_TEXT, open_document, screenshot, type_in

pytest.importorskip("jupyter_docprovider", reason="the Jupyter project's front end (test extra)")


async def test_two_users_type_in_jupyterlab(make_lab, browser):
    lab = make_lab("theirs")
    path = write_notebook(lab.root, "shared.ipynb", sources=["x = 1"])
    alice = await open_document(browser, lab, "alice", path, selector=CELL)
    bob = await open_document(browser, lab, "bob", path, selector=CELL)
    # Ours is disabled here: none of its UI is on the page.
    assert await alice.locator(".jp-collab-toolbar").count() == 0
    await type_in(alice, CELL, "\n# typed by alice ✓")
    await bob.wait_for_function(SHOWS_TEXT, arg="# typed by alice ✓", timeout=15_000)
    await type_in(bob, CELL, "# bob was here\n", at_end=False)
    await alice.wait_for_function(SHOWS_TEXT, arg="# bob was here", timeout=15_000)
    await screenshot(alice, "jupyterlab-alice.png")
    await screenshot(bob, "jupyterlab-bob.png")
    await eventually(lambda: disk_sources(lab, path) == ["# bob was here\nx = 1\n# typed by alice ✓"])
    assert "bad message" not in lab.log()  # JupyterLab speaks nothing we refuse

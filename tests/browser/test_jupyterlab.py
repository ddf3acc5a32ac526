"""JupyterLab's own collaboration front end (@jupyter/docprovider) against our server, in a
real headless Chromium: two users type in one notebook and see each other's edits.

This is the wire-compatibility promise: JupyterLab's client works against us unchanged.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from ..conftest import write_notebook
from ..helpers import disk_sources, eventually
from ..server import TOKEN, ServerProcess

playwright = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("jupyter_docprovider", reason="install the [lab] extra for JupyterLab's front end")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Is a string shown in any cell editor of the page?
SHOWS_TEXT = (
    "m => [...document.querySelectorAll('.jp-Notebook .cm-content')].some(e => e.innerText.includes(m))"
)


@pytest.fixture
def lab(tmp_path):
    server = ServerProcess(tmp_path, app="jupyterlab")
    server.start(timeout=60)
    yield server
    server.stop()


async def open_notebook(browser, server: ServerProcess, who: str, path: str):
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    workspace = f"{who}-{time.monotonic_ns()}"
    await page.goto(f"{server.url}/lab/workspaces/{workspace}/tree/{path}?token={TOKEN}&reset")
    await page.wait_for_selector(".jp-Notebook .jp-CodeCell .cm-content", timeout=60_000)
    return page


async def test_two_users_type_in_jupyterlab(lab):
    path = write_notebook(lab.root, "shared.ipynb", sources=["x = 1"])
    async with playwright.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        alice = await open_notebook(browser, lab, "alice", path)
        bob = await open_notebook(browser, lab, "bob", path)
        cell = alice.locator(".jp-Notebook .jp-CodeCell").first.locator(".cm-content")
        await cell.click()
        await alice.keyboard.press("Control+End")
        await alice.keyboard.type("\n# typed by alice ✓", delay=10)
        await bob.wait_for_function(
            SHOWS_TEXT,
            arg="# typed by alice ✓",
            timeout=15_000,
        )
        bob_cell = bob.locator(".jp-Notebook .jp-CodeCell").first.locator(".cm-content")
        await bob_cell.click()
        await bob.keyboard.press("Control+Home")
        await bob.keyboard.type("# bob was here\n", delay=10)
        await alice.wait_for_function(
            SHOWS_TEXT,
            arg="# bob was here",
            timeout=15_000,
        )
        await alice.wait_for_timeout(500)  # let both editors paint before the screenshots
        ARTIFACTS.mkdir(exist_ok=True)
        await alice.screenshot(path=str(ARTIFACTS / "jupyterlab-alice.png"))
        await bob.screenshot(path=str(ARTIFACTS / "jupyterlab-bob.png"))
        await browser.close()
    await eventually(lambda: disk_sources(lab, path) == ["# bob was here\nx = 1\n# typed by alice ✓"])
    assert "bad message" not in lab.log()  # JupyterLab speaks nothing we refuse

"""Trust in the owner's browser: outputs an editor writes through the shared document never
render trusted in the owner's JupyterLab (HTML sanitized, no script runs), while the outputs
of the owner's own runs stay trusted (JupyterLab's behaviour).

The editor (bob) is a Python client; the owner (alice) has the notebook open in Chromium.
Outputs written into an existing cell are the front end's to distrust (labextension/src/
trust.ts); a new cell's trust comes from its metadata, which the server withdraws when a
non-owner sets it.
"""

from __future__ import annotations

from typing import Any

from jupyter_collab.client import NotebookClient

from ..helpers import write_notebook
from .conftest import CELL, open_document

READY = ".jp-NotebookPanel-toolbar .jp-collab-status-connected"
SEEN = "written by bob"
# Trusted, this runs JavaScript twice: the <img> error handler (innerHTML fires it) and the
# <script> (JupyterLab evaluates scripts of trusted HTML).
CRAFTED = (
    f"<p>{SEEN}</p>"
    '<img src="no-such-image.png" onerror="window.__pwned = \'img onerror\'">'
    "<script>window.__pwned = 'script'</script>"
)
CRAFTED_OUTPUTS = [
    {"output_type": "display_data", "data": {"text/html": CRAFTED, "text/plain": "bob"}, "metadata": {}}
]
# The owner's own output: trusted, its script counts the runs.
OWN_CELL = (
    "from IPython.display import HTML\n"
    "HTML('<b>own output</b><script>window.__own = (window.__own || 0) + 1</script>')"
)


# Running a cell before the kernel is there does nothing (JupyterLab clears it instead).
KERNEL_IDLE = "() => window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status === 'idle'"


async def run_first_cell(page: Any) -> None:
    await page.wait_for_function(KERNEL_IDLE, timeout=90_000)
    await page.locator(CELL).first.click()
    await page.keyboard.press("Shift+Enter")


def html_output(page: Any, text: str) -> Any:
    return page.locator('.jp-OutputArea-output[data-mime-type="text/html"]', has_text=text)


async def assert_rendered_untrusted(page: Any) -> None:
    """Bob's output is shown, sanitized, and none of its JavaScript ran."""
    output = html_output(page, SEEN)
    await output.wait_for(timeout=30_000)
    await page.wait_for_timeout(1000)  # time for an image error (or a script) to fire
    assert await page.evaluate("() => window.__pwned") is None
    assert "jp-mod-trusted" not in (await output.get_attribute("class") or "").split()
    assert await output.locator("img[onerror], script").count() == 0


async def test_editor_outputs_in_a_cell_the_owner_ran_render_untrusted(make_lab, browser):
    lab = make_lab("ours")
    path = write_notebook(lab.root, "trust.ipynb", sources=[OWN_CELL, "x = 1"])
    alice = await open_document(browser, lab, "alice", path, selector=READY)
    # Alice runs her cell: its model is trusted now, and so is her output (its script ran).
    await run_first_cell(alice)
    await html_output(alice, "own output").wait_for(timeout=30_000)
    await alice.wait_for_function("() => window.__own === 1", timeout=15_000)
    # Bob, an editor, replaces the outputs of that cell with crafted trusted-looking HTML.
    async with NotebookClient(lab.url, path, token="bob-token", name="bob-script") as bob:
        cell_id = (await bob.cells())[0]["id"]
        await bob.set_outputs(cell_id, CRAFTED_OUTPUTS)
    await assert_rendered_untrusted(alice)
    assert await alice.locator(".jp-CodeCell").first.locator(".jp-OutputArea-output").count() == 1
    # Her own next run is trusted again.
    await run_first_cell(alice)
    await alice.wait_for_function("() => window.__own === 2", timeout=30_000)
    assert await alice.evaluate("() => window.__pwned") is None


async def test_editor_cell_claiming_trust_renders_untrusted(make_lab, browser):
    lab = make_lab("ours")
    path = write_notebook(lab.root, "claim.ipynb", sources=["x = 1"])
    alice = await open_document(browser, lab, "alice", path, selector=READY)
    # Bob inserts a cell whose metadata says trusted, with crafted HTML outputs (the server
    # makes it untrusted in the same transaction: JupyterLab builds the cell untrusted).
    async with NotebookClient(lab.url, path, token="bob-token", name="bob-script") as bob:
        first = (await bob.cells())[0]["id"]
        await bob.insert("y = 2", after=first, metadata={"trusted": True}, outputs=CRAFTED_OUTPUTS)
    await assert_rendered_untrusted(alice)

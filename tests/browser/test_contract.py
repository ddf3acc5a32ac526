"""Our front end follows docs/wire-protocol.md where retrying cannot help: a change over the
server's size limit (close 1009) is given up on and said so, a 400 session answer is final
with the server's message, and a 404 one says that the document may exist but not for this
user (the server answers 404 for both)."""

from __future__ import annotations

import json

from ..helpers import write_notebook
from .conftest import open_document, page_state

READY = ".jp-NotebookPanel-toolbar .jp-collab-status-connected"
STATUS = ".jp-NotebookPanel-toolbar .jp-collab-status"
# A cell's source far over the limit below, set through the shared model (one update).
TOO_BIG_CHANGE = """() => window.jupyterapp.shell.currentWidget.content.widgets[0]
  .model.sharedModel.setSource('# ' + 'x'.repeat(20000))"""
OPEN = "p => window.jupyterapp.commands.execute('docmanager:open', {path: p})"


async def refused_open(page, path: str) -> str:
    """Open `path`, which the server refuses: the text of our dialog. JupyterLab shows one
    dialog at a time, ours first, then its own "File Load Error"; both are closed."""
    await page.evaluate(OPEN, path)
    ours = page.locator(".jp-Dialog", has_text=f"{path}: disconnected")
    await ours.wait_for(timeout=15_000)
    text = await ours.inner_text()
    await ours.locator(".jp-Dialog-button.jp-mod-accept").click()
    theirs = page.locator(".jp-Dialog", has_text=f"File Load Error for {path}")
    await theirs.locator(".jp-Dialog-button").first.click()  # its only button, "Close"
    return text


async def test_too_big_gives_up_400_is_final_404_names_no_access(make_lab, browser, tmp_path):
    roles = tmp_path / "roles.json"
    roles.write_text(json.dumps({"alice": "owner"}))
    config = (
        '\nc.CollabApp.permission_policy_class = "tests.identity.RolesFilePolicy"'
        f"\nc.RolesFilePolicy.roles_file = {str(roles)!r}"
        "\nc.CollabApp.max_message_bytes = 8192\n"
    )
    lab = make_lab("ours", extra_config=config)
    path = write_notebook(lab.root, "small.ipynb", sources=["x = 1"])
    other = write_notebook(lab.root, "other.ipynb", sources=["y = 2"])
    (lab.root / "broken.ipynb").write_text("not a notebook")
    alice = await open_document(browser, lab, "alice", path, selector=READY)

    # 1009: sending the same state again gets the same answer, so no reconnecting.
    await alice.evaluate(TOO_BIG_CHANGE)
    too_big = alice.locator(".jp-Dialog", has_text="too large for the server")
    await too_big.wait_for(timeout=15_000)
    assert "Reloading will not help until the change is smaller" in await too_big.inner_text()
    await alice.wait_for_timeout(1500)  # a retry would be under way by now (0.5 s backoff)
    state = await page_state(alice)
    assert await alice.locator(f'{STATUS}[data-status="failed"]').count() == 1, state
    assert "sent a message over max_message_bytes" in lab.log()
    assert lab.log().count("closed with 1009") == 1
    await too_big.locator(".jp-Dialog-button.jp-mod-accept").click()

    # 400 (here an unreadable file): final too, with the server's message.
    text = await refused_open(alice, "broken.ipynb")
    assert "The server refused to open this document: cannot open broken.ipynb" in text
    assert await alice.locator(f'{STATUS}[data-status="reconnecting"]').count() == 0

    # 404: the file is there (the contents API lets alice read it) but the policy now gives
    # her no role; the server answers as for a missing file, and so do we.
    roles.write_text(json.dumps({}))
    text = await refused_open(alice, other)
    assert "does not exist on the server, or you have no access to it" in text

"""Our JupyterLab front end (labextension/) in a real headless Chromium, with two or three
users (browser contexts with their own tokens) on one notebook; the server is a real
`jupyter lab` subprocess with the Jupyter project's front end disabled."""

from __future__ import annotations

import json

from ..helpers import disk_sources, eventually, recheck_permissions, write_notebook
from .conftest import CELL, SHOWS_TEXT, open_document, page_state, playwright, screenshot, type_in

READY = ".jp-NotebookPanel-toolbar .jp-collab-status-connected"
TOOLBAR = ".jp-NotebookPanel-toolbar"


async def test_two_users_type_and_see_each_other(make_lab, browser):
    lab = make_lab("ours")
    path = write_notebook(lab.root, "shared.ipynb", sources=["import math", "radius = 2", "area = math.pi"])
    alice = await open_document(browser, lab, "alice", path, selector=READY)
    bob = await open_document(browser, lab, "bob", path, selector=READY)
    # Each sees the other's avatar (initials, colour, name and role in the tooltip).
    bob_avatar = alice.locator(f'{TOOLBAR} .jp-collab-avatar[data-username="bob"]')
    await bob_avatar.wait_for(timeout=15_000)
    assert await bob_avatar.inner_text() == "BO"
    assert "Bob Editor (editor)" in (await bob_avatar.get_attribute("title") or "")
    await bob.wait_for_selector(f'{TOOLBAR} .jp-collab-avatar[data-username="alice"]', timeout=15_000)
    # The collaborators panel lists who is on which document.
    await bob.locator('.jp-SideBar [data-id="jp-collab-collaborators"]').click()
    person = bob.locator('.jp-collab-person[data-username="alice"]')
    await person.locator(".jp-collab-personDocs >> text=shared.ipynb").wait_for(timeout=15_000)
    # Typing in one appears in the other, with the typist's named cursor and cell marker.
    await type_in(bob, CELL, "  # bob's cell", index=0)
    await type_in(alice, CELL, " * radius ** 2", index=2)
    await bob.wait_for_function(SHOWS_TEXT, arg="math.pi * radius ** 2", timeout=15_000)
    await alice.wait_for_function(SHOWS_TEXT, arg="# bob's cell", timeout=15_000)
    label = bob.locator(".jp-collab-caretLabel", has_text="Alice")
    await label.wait_for(timeout=15_000)
    assert await label.is_visible()
    await alice.locator(".jp-collab-caretLabel", has_text="Bob").wait_for(timeout=15_000)
    await bob.wait_for_selector(".jp-collab-cellPresent .jp-collab-cellChip >> text=AL", timeout=15_000)
    await screenshot(alice, "ours-two-users-alice.png")
    await screenshot(bob, "ours-two-users-bob.png")
    expected = ["import math  # bob's cell", "radius = 2", "area = math.pi * radius ** 2"]
    await eventually(lambda: disk_sources(lab, path) == expected, timeout=15)


async def test_text_file_is_shared_too(make_lab, browser):
    lab = make_lab("ours")
    (lab.root / "notes.txt").write_text("first line\n")
    editor = ".jp-FileEditor .cm-content"
    ready = ".jp-FileEditor ~ * .jp-collab-status-connected, .jp-Toolbar .jp-collab-status-connected"
    alice = await open_document(browser, lab, "alice", "notes.txt", selector=ready)
    bob = await open_document(browser, lab, "bob", "notes.txt", selector=ready)
    await type_in(alice, editor, "second line from alice")
    await bob.wait_for_function(SHOWS_TEXT, arg="second line from alice", timeout=15_000)
    await eventually(lambda: (lab.root / "notes.txt").read_text() == "first line\nsecond line from alice")


# The notebook in front, through the app exposed by `expose_app_in_browser`.
ACTIVE_INDEX = "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex"
CELL_IN_VIEW = """i => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  const box = nb.node.getBoundingClientRect(), cell = nb.widgets[i].node.getBoundingClientRect();
  return nb.activeCellIndex === i && cell.top >= box.top - 5 && cell.top < box.bottom - 20;
}"""


async def test_follow_moves_the_followers_view(make_lab, browser):
    lab = make_lab("ours")
    path = write_notebook(lab.root, "long.ipynb", sources=[f"cell_{i} = {i}" for i in range(40)])
    alice = await open_document(browser, lab, "alice", path, selector=READY)
    bob = await open_document(browser, lab, "bob", path, selector=READY)
    # Bob works far down the notebook.
    await bob.locator(CELL).nth(34).click()
    await alice.wait_for_selector(".jp-collab-cellPresent .jp-collab-cellChip >> text=BO", timeout=15_000)
    assert await alice.evaluate(ACTIVE_INDEX) == 0
    # Alice follows him: her view goes to his cell, and he sees it.
    await alice.locator('.jp-NotebookPanel-toolbar .jp-collab-avatar[data-username="bob"]').click()
    await alice.wait_for_function(CELL_IN_VIEW, arg=34, timeout=15_000)
    await bob.wait_for_selector(".jp-collab-followedBy >> text=Alice following you", timeout=15_000)
    # He moves on; she goes with him.
    await bob.locator(CELL).nth(5).click()
    await alice.wait_for_function(CELL_IN_VIEW, arg=5, timeout=15_000)
    await screenshot(alice, "ours-follow-alice.png")
    # Any action of her own stops it, and he sees that too.
    await alice.locator(CELL).nth(20).click()
    await bob.wait_for_selector(".jp-collab-followedBy", state="hidden", timeout=15_000)
    await bob.locator(CELL).nth(30).click()
    await bob.wait_for_timeout(1000)  # nothing to wait for: she must *not* move
    assert await alice.evaluate(ACTIVE_INDEX) == 20


async def test_preferences_no_following_and_names_on_hover(make_lab, browser):
    lab = make_lab("ours", allowFollow=False, cursorNames="hover")
    path = write_notebook(lab.root, "private.ipynb", sources=["a = 1", "b = 2"])
    alice = await open_document(browser, lab, "alice", path, selector=READY)
    bob = await open_document(browser, lab, "bob", path, selector=READY)
    await alice.wait_for_selector("body.jp-collab-names-hover", state="attached", timeout=15_000)
    bob_avatar = alice.locator(f'{TOOLBAR} .jp-collab-avatar[data-username="bob"]')
    await alice.wait_for_function(
        "el => el.title.includes('Does not allow being followed')",
        arg=await bob_avatar.element_handle(timeout=15_000),
        timeout=15_000,
    )
    await bob_avatar.click()
    await bob.locator(CELL).nth(1).click()
    await bob.wait_for_timeout(1000)  # nothing to wait for: she must *not* follow
    assert await alice.evaluate(ACTIVE_INDEX) == 0
    assert not await bob.locator(".jp-collab-followedBy").is_visible()


CELL_COUNT = "() => document.querySelectorAll('.jp-Notebook .jp-Cell').length"
# An edit through CodeMirror (the same path as typing), at the end of cell i.
APPEND_IN_EDITOR = """([i, text]) => {
  const editor = window.jupyterapp.shell.currentWidget.content.widgets[i].editor;
  editor.setCursorPosition(editor.getPositionAt(editor.model.sharedModel.getSource().length));
  editor.replaceSelection(text);
}"""


async def test_viewer_cannot_edit_and_sees_the_badge(make_lab, browser):
    lab = make_lab("ours")
    path = write_notebook(lab.root, "lesson.ipynb", sources=["answer = 42"])
    alice = await open_document(browser, lab, "alice", path, selector=READY)
    carol = await open_document(browser, lab, "carol", path, selector=READY)
    await carol.wait_for_selector(".jp-NotebookPanel-toolbar .jp-collab-viewOnly >> text=View only")
    assert not await alice.locator(".jp-NotebookPanel-toolbar .jp-collab-viewOnly").is_visible()
    # Carol sees Alice's typing live ...
    await type_in(alice, CELL, "  # from alice")
    await carol.wait_for_function(SHOWS_TEXT, arg="# from alice", timeout=15_000)
    # ... but cannot type, add, paste or delete cells, by keyboard or toolbar.
    editor = carol.locator(CELL).first
    await editor.click()
    await carol.keyboard.type("carol was here", delay=10)
    await carol.keyboard.press("Escape")
    for key in ["b", "a", "d", "d", "x", "v", "Shift+Enter"]:  # add, delete, cut, paste, run
        await carol.keyboard.press(key)
    insert_button = '.jp-NotebookPanel-toolbar [data-command="notebook:insert-cell-below"]'
    await carol.locator(insert_button).click(force=True)
    await carol.wait_for_timeout(500)  # let anything she might have sent arrive
    assert await carol.evaluate(CELL_COUNT) == 1
    assert "carol was here" not in await editor.inner_text()
    assert await alice.evaluate(CELL_COUNT) == 1
    await screenshot(carol, "ours-viewer-carol.png")
    # The server never had to refuse anything: she stayed connected.
    assert "refused a change from carol" not in lab.log()
    assert await carol.locator(".jp-NotebookPanel-toolbar .jp-collab-status-connected").is_visible()
    await eventually(lambda: disk_sources(lab, path) == ["answer = 42  # from alice"])


async def test_server_restart_reconnects_without_duplicates(make_lab, browser):
    lab = make_lab("ours")
    path = write_notebook(lab.root, "restart.ipynb", sources=["a = 1", "b = 2", "c = 3"])
    alice = await open_document(browser, lab, "alice", path, selector=READY)
    bob = await open_document(browser, lab, "bob", path, selector=READY)
    await eventually(lambda: "jupyter_collab" in lab.log())
    lab.kill()
    status = ".jp-NotebookPanel-toolbar .jp-collab-status"
    await alice.wait_for_selector(f'{status}[data-status="reconnecting"]', timeout=30_000)
    # Editing while the server is away: kept, and said so. Through the cell's editor API
    # rather than the keyboard: JupyterLab's own modal "Server Connection Error" dialog
    # may pop up at any moment now and take the keyboard focus.
    await alice.evaluate(APPEND_IN_EDITOR, [1, "  # offline edit"])
    await alice.wait_for_selector(f'{status}[data-status="offline"]', timeout=15_000)
    await screenshot(alice, "ours-offline-alice.png")
    lab.start(timeout=60)
    await alice.wait_for_selector(f"{status}[data-status=connected]", timeout=60_000)
    await bob.wait_for_selector(f"{status}[data-status=connected]", timeout=60_000)
    try:
        await bob.wait_for_function(SHOWS_TEXT, arg="# offline edit", timeout=30_000)
    except playwright.Error as exc:  # say what each side shows, for a CI log
        raise AssertionError(
            f"alice: {await page_state(alice)}\nbob: {await page_state(bob)}\n"
            f"disk: {disk_sources(lab, path)}\nserver log tail:\n{lab.log()[-2000:]}"
        ) from exc
    for page in (alice, bob):
        assert await page.evaluate(CELL_COUNT) == 3
    expected = ["a = 1", "b = 2  # offline edit", "c = 3"]
    await eventually(lambda: disk_sources(lab, path) == expected, timeout=15)


async def test_locked_cells_and_role_change_while_connected(make_lab, browser, tmp_path):
    roles = tmp_path / "roles.json"
    roles.write_text(json.dumps({"alice": "owner", "bob": "editor", "locked": {}}))
    policy = (
        '\nc.CollabApp.permission_policy_class = "tests.identity.RolesFilePolicy"'
        f"\nc.RolesFilePolicy.roles_file = {str(roles)!r}\n"
    )
    lab = make_lab("ours", extra_config=policy)
    path = write_notebook(lab.root, "locks.ipynb", sources=["free = 1", "frozen = 2", "policy = 3"])
    nb = json.loads((lab.root / path).read_text())
    nb["cells"][1]["metadata"]["editable"] = False
    (lab.root / path).write_text(json.dumps(nb))
    policy_locked = nb["cells"][2]["id"]
    roles.write_text(json.dumps({"alice": "owner", "bob": "editor", "locked": {"bob": [policy_locked]}}))
    bob = await open_document(browser, lab, "bob", path, selector=READY)
    cells = bob.locator(".jp-Notebook .jp-Cell")
    # Both locked cells show a lock, and Bob cannot type into them; the free one he can.
    await bob.wait_for_selector(".jp-Cell.jp-collab-locked >> nth=1", timeout=15_000)
    assert await cells.nth(0).locator(".jp-collab-lockBadge").count() == 0
    for index, text in [(1, "frozen = 2"), (2, "policy = 3")]:
        await cells.nth(index).locator(".cm-content").click()
        await bob.keyboard.type("#bob", delay=10)
        assert await cells.nth(index).locator(".cm-content").inner_text() == text
    await type_in(bob, ".jp-Notebook .jp-Cell .cm-content", "  # bob", index=0)
    await eventually(lambda: disk_sources(lab, path)[0] == "free = 1  # bob", timeout=15)
    # Demoted while connected: the UI follows at once ...
    await bob.keyboard.press("Escape")
    roles.write_text(json.dumps({"alice": "owner", "bob": "viewer"}))
    await recheck_permissions(lab, "alice-token")
    badge = ".jp-NotebookPanel-toolbar .jp-collab-viewOnly"
    await bob.wait_for_selector(badge, timeout=15_000)
    await cells.nth(0).locator(".cm-content").click()
    await bob.keyboard.type("#demoted", delay=10)
    assert "#demoted" not in await cells.nth(0).locator(".cm-content").inner_text()
    # ... and back: he edits again (the policy lock is gone too).
    roles.write_text(json.dumps({"alice": "owner", "bob": "editor"}))
    await recheck_permissions(lab, "alice-token")
    await bob.wait_for_selector(badge, state="hidden", timeout=15_000)
    await bob.wait_for_function(
        "() => document.querySelectorAll('.jp-Cell.jp-collab-locked').length === 1", timeout=15_000
    )
    await type_in(bob, ".jp-Notebook .jp-Cell .cm-content", "  # unlocked", index=2)
    await eventually(lambda: disk_sources(lab, path)[2] == "policy = 3  # unlocked", timeout=15)
    assert "refused a change from bob" not in lab.log()
    # Access revoked (4403): said plainly, and no blind reconnecting.
    roles.write_text(json.dumps({"alice": "owner"}))
    await recheck_permissions(lab, "alice-token")
    await bob.wait_for_selector(".jp-Dialog >> text=You no longer have access", timeout=15_000)
    await bob.wait_for_selector(f'{TOOLBAR} .jp-collab-status[data-status="failed"]', timeout=15_000)


async def test_both_front_ends_installed_is_said_clearly(make_lab, browser):
    lab = make_lab("both")
    path = write_notebook(lab.root, "both.ipynb")
    page = await open_document(browser, lab, "alice", path, selector=".jp-Dialog")
    assert await page.locator(".jp-Dialog >> text=Two collaboration front ends are installed").is_visible()

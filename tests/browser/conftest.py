"""Browser-test fixtures: a real `jupyter lab` subprocess with per-user tokens, one of the two
collaboration front ends enabled, and Debian's Chromium driven by playwright (no browser
download).

Both front ends are installed in the test environment (ours is built by `pip install`,
the Jupyter project's comes with the `jupyter-docprovider` test dependency); they cannot
both own the documents, so each server disables one of them in its own config directory
(`labconfig/page_config.json`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..server import ServerProcess

playwright = pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
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
TOKENS = {"alice": "alice-token", "bob": "bob-token", "carol": "carol-token"}

OURS = "jupyter-collab"
THEIRS = "@jupyter/docprovider-extension"
# jupyter-docprovider's install config switches off these two core plugins (it replaces
# them); with it disabled they must come back, or there is no file browser / cell runner.
REPLACED_BY_THEIRS = [
    "@jupyterlab/filebrowser-extension:defaultFileBrowser",
    "@jupyterlab/notebook-extension:cell-executor",
]

LAB_CONFIG = """
c.ServerApp.identity_provider_class = "tests.identity.TokenPerUser"
c.ServerApp.authorizer_class = "tests.identity.CarolReadsOnly"
c.AuthorizerPolicy.owners = ["alice"]
c.LabApp.expose_app_in_browser = True
c.LabApp.workspaces_dir = {workspaces!r}
c.LabApp.user_settings_dir = {settings!r}
"""


def lab_server(
    base: Path, front_end: str, extra_config: str = "", preferences: dict[str, Any] | None = None
) -> ServerProcess:
    """A JupyterLab server with `front_end` ("ours", "theirs" or "both") enabled, and our
    plugin's `preferences` in its user settings (shared by every user of this server)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    config_dir = base / "config" / "labconfig"
    config_dir.mkdir(parents=True, exist_ok=True)
    if front_end == "ours":
        disabled = {THEIRS: True, **{name: False for name in REPLACED_BY_THEIRS}}
    elif front_end == "theirs":
        disabled = {OURS: True}
    else:
        disabled = {}
    (config_dir / "page_config.json").write_text(json.dumps({"disabledExtensions": disabled}))
    settings = base / "user-settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    # No "news" or "update" toasts over the screenshots.
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    if preferences:
        ours = settings / OURS / "plugin.jupyterlab-settings"
        ours.parent.mkdir(parents=True, exist_ok=True)
        ours.write_text(json.dumps(preferences))
    extra = LAB_CONFIG.format(workspaces=str(base / "workspaces"), settings=str(settings))
    return ServerProcess(base, app="jupyterlab", extra_config=extra + extra_config)


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def make(front_end: str = "ours", extra_config: str = "", **preferences: Any) -> ServerProcess:
        base = tmp_path / f"lab-{len(started)}"
        server = lab_server(base, front_end, extra_config, preferences).start(timeout=60)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def open_document(browser: Any, server: ServerProcess, who: str, path: str, *, selector: str) -> Any:
    """A new browser context (its own cookies: a different user) on `path`, in its own
    workspace (shared workspaces would restore other tests' tabs)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    page.on("console", lambda msg: _console(who, msg))
    page.on("pageerror", lambda exc: print(f"[{who} pageerror] {exc}"))
    token = TOKENS.get(who, who)
    workspace = f"{who}-{time.monotonic_ns()}"
    await page.goto(f"{server.url}/lab/workspaces/{workspace}/tree/{path}?token={token}&reset")
    await page.wait_for_selector(selector, timeout=90_000)
    return page


# Is a string shown in any cell editor of the page?
SHOWS_TEXT = "m => [...document.querySelectorAll('.cm-content')].some(e => e.innerText.includes(m))"
CELL = ".jp-Notebook .jp-CodeCell .cm-content"


async def type_in(page: Any, editor: str, text: str, *, index: int = 0, at_end: bool = True) -> None:
    """Click into the `index`-th editor matching `editor` and type at its end (or start)."""
    await page.locator(editor).nth(index).click()
    await page.keyboard.press("Control+End" if at_end else "Control+Home")
    await page.keyboard.type(text, delay=10)


async def page_state(page: Any) -> dict[str, Any]:
    """What a page shows of the collaboration: statuses (with their messages) and editors."""
    return await page.evaluate(
        """() => ({
          status: [...document.querySelectorAll('.jp-collab-status')]
            .map(e => `${e.dataset.status}: ${e.title}`),
          editors: [...document.querySelectorAll('.cm-content')].map(e => e.innerText),
          dialogs: [...document.querySelectorAll('.jp-Dialog')].map(e => e.innerText),
        })"""
    )


def _console(who: str, msg: Any) -> None:
    """Our front end's warnings and errors go to the test's output (shown on failure)."""
    if msg.type in ("error", "warning") and "jupyter-collab" in msg.text:
        print(f"[{who} console] {msg.type}: {msg.text[:300]}")


async def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name))

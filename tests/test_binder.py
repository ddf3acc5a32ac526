"""The Binder setup works: repo2docker's install steps in a fresh virtualenv, then the demo.

What repo2docker does with binder/, and what this test does instead:
- environment.yml: a conda environment with Python and Node. Here: no conda; the test
  checks the file asks only for python, nodejs and pip, and uses this machine's Python and
  Node (a Python version other than the pinned one, within what pyproject allows).
- postBuild, from a copy of the repository as repo2docker would have it (git's files):
  run as is, with pip's normal build isolation (only the download caches of pip and yarn
  are shared with the machine, to keep it fast; the image build uses --no-cache-dir).
- the server: mybinder.org starts `jupyterhub-singleuser` under its own Hub; here
  `jupyter lab` with a token, the way repo2docker runs an image locally. Both read the
  demo config postBuild installs into the environment.
Then real clients join the demo notebook: a visitor is an editor with a demo name, and a
`?role=viewer` link yields a viewer whose edits are refused.

Slow (a full install, the front end's build included: 2 to 4 minutes on a 2-core machine
with warm caches); skip it with JUPYTER_COLLAB_SKIP_BINDER=1.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from jupyter_collab.client import RoomClient, open_session, room_url

from .harness import REPO, free_port, wait_until_serving
from .helpers import eventually, sources

pytestmark = [
    pytest.mark.timeout(1200),
    pytest.mark.skipif(bool(os.environ.get("JUPYTER_COLLAB_SKIP_BINDER")), reason="asked to skip"),
]

TOKEN = "binder-test-token"
NOTEBOOK = "demo/welcome.ipynb"


def repository_copy(dest: Path) -> Path:
    """The repository as a clone of the working tree would have it: the files git tracks or
    would track (not ignored), as they are now; never a node_modules (a build installs it)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file() and "node_modules" not in Path(name).parts:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def run(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(args)}\n")
        out.flush()
        result = subprocess.run(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=900)
    if result.returncode:
        raise AssertionError(f"{args} failed with {result.returncode}:\n{log.read_text()[-6000:]}")


@pytest.fixture(scope="module")
def binder_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("binder")
    log = base / "build.log"
    environment = yaml.safe_load((REPO / "binder" / "environment.yml").read_text())
    conda = [d.split("=")[0] for d in environment["dependencies"] if isinstance(d, str)]
    assert set(conda) <= {"python", "nodejs", "pip"}, f"the test cannot reproduce conda packages {conda}"
    assert shutil.which("node") and shutil.which("npm"), "environment.yml's nodejs: Node is needed"
    pip_section = next((d["pip"] for d in environment["dependencies"] if isinstance(d, dict)), [])

    started = time.monotonic()
    repo = repository_copy(base / "repo")
    home = base / "home"
    home.mkdir()
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        "HOME": str(home),
        # The machine's download caches: pip's (the image build uses --no-cache-dir, which
        # turns it off) and yarn's, for the front end's npm packages.
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
        "YARN_ENABLE_GLOBAL_CACHE": "true",
        "YARN_GLOBAL_FOLDER": os.environ.get("YARN_GLOBAL_FOLDER", str(Path.home() / ".yarn" / "berry")),
        "JUPYTER_PLATFORM_DIRS": "0",
    }
    env.pop("PYTHONPATH", None)  # nothing of this checkout: only what the steps install
    env.pop("PIP_NO_CACHE_DIR", None)
    postbuild = (repo / "binder" / "postBuild").read_text().replace("--no-cache-dir ", "")
    (repo / "binder" / "postBuild").write_text(postbuild)
    if pip_section:
        run([str(venv / "bin" / "python"), "-m", "pip", "install", *pip_section], env, repo, log)
    run(["bash", "binder/postBuild"], env, repo, log)
    print(f"binder install steps: {time.monotonic() - started:.0f}s")

    port = free_port()
    server_log = open(base / "server.log", "a")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [str(venv / "bin" / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}", "--allow-root",
         f"--ServerApp.root_dir={repo}"],
        env=env,
        cwd=repo,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(proc, f"{url}/api/status?token={TOKEN}", base / "server.log", 60)
    yield url
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


async def join(url: str, role: str | None = None) -> RoomClient:
    session = await open_session(url, NOTEBOOK, TOKEN)
    room = room_url(url, session, TOKEN) + (f"&role={role}" if role else "")
    return await RoomClient(room).connect(timeout=30)


async def test_visitors_join_the_demo_notebook_and_a_viewer_link_yields_a_viewer(binder_server: str) -> None:
    url = binder_server
    visitor = await join(url)
    viewer = await join(url, "viewer")
    assert (visitor.role, viewer.role) == ("editor", "viewer")
    assert any("Welcome to jupyter-collab" in source for source in sources(visitor))

    # Each visitor is in presence with a demo name, and their role.
    visitor.set_awareness({"cursor": 0})
    viewer.set_awareness({"cursor": 1})

    def names() -> dict[str, str]:
        states = [s["user"] for s in visitor.awareness.values() if "user" in s]
        return {user["role"]: user["display_name"] for user in states}

    seen = await eventually(lambda: len(names()) == 2 and names(), timeout=20)
    assert seen["viewer"].startswith("Demo ") and seen["viewer"].endswith("(viewer)")
    assert seen["editor"].startswith("Demo ") and seen["editor"].endswith("(editor)")

    # The editor's edits reach the viewer; the viewer's are refused.
    visitor.notebook().ycells[0]["source"].insert(0, "Hello from a visitor. ")
    await eventually(lambda: sources(viewer)[0].startswith("Hello from a visitor. "), timeout=20)
    viewer.notebook().ycells[0]["source"].insert(0, "nope ")
    code, reason = await viewer.wait_closed(timeout=20)
    assert code == 1003 and json.loads(reason)["reason"] == "permission_denied"
    await asyncio.sleep(0.5)
    assert not sources(visitor)[0].startswith("nope")

    # In a browser, the viewer link sets the role for the next requests (a cookie), and
    # JupyterLab itself is served on the demo notebook ...
    page = await AsyncHTTPClient().fetch(
        HTTPRequest(f"{url}/lab/tree/{NOTEBOOK}?role=viewer", headers={"Authorization": f"token {TOKEN}"})
    )
    assert page.code == 200
    config = re.search(rb'id="jupyter-config-data"[^>]*>(.*?)</script>', page.body, re.S)
    assert config is not None
    # ... with our front end (built from labextension/ by `pip install .`) in it.
    extensions = {e["name"] for e in json.loads(config.group(1))["federated_extensions"]}
    assert json.loads((REPO / "labextension" / "package.json").read_text())["name"] in extensions
    # The page's cookies make that browser's sockets a viewer.
    set_cookies = page.headers.get_list("Set-Cookie")
    cookies = [c.split(";")[0] for c in set_cookies if c.startswith("jupyter-collab-demo")]
    assert "jupyter-collab-demo-role=viewer" in cookies, cookies
    session = await open_session(url, NOTEBOOK, TOKEN)
    headers = {"Authorization": f"token {TOKEN}", "Cookie": "; ".join(cookies)}
    browser = await RoomClient(room_url(url, session, TOKEN), headers=headers).connect(timeout=30)
    assert browser.role == "viewer"
    for client in (visitor, browser):
        await client.close()

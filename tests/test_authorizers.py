"""`RulesAuthorizer`: the permission policy's roles on the rest of the server, for real.

One server runs `RulesPolicy` for its rooms and `RulesAuthorizer` for everything else,
with the README's classroom rules: alice (a teacher) owns everything, `solutions/*` is
`none` for everyone else, bob is an editor and carol a viewer elsewhere, dave has nothing.
Every route the server serves is tried by bob with every spelling of the solution's path;
he must get none of it and change nothing on disk.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest
from jupyter_server.auth.authorizer import AllowAllAuthorizer
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import websocket_connect

from jupyter_collab.authorizers import RulesAuthorizer
from jupyter_collab.client import open_session
from jupyter_collab.enforcement import warn_if_policy_unenforced
from jupyter_collab.hub import HubPolicy
from jupyter_collab.permissions import AuthorizerPolicy, RulesPolicy

from .harness import REPO
from .server import ServerProcess

pytestmark = pytest.mark.timeout(240)

SECRET = "the answer is 42, do not tell bob"
SOLUTION = "solutions/answer.ipynb"
SPELLINGS = [
    SOLUTION,
    "./solutions/answer.ipynb",
    "public/../solutions/answer.ipynb",
    "public/%2E%2E/solutions/answer.ipynb",
    "solutions%2Fanswer.ipynb",
    "solutions/answer.ipynb/.",
    "solutions//answer.ipynb",
]
RULES = [
    {"paths": ["solutions/*"], "groups": ["teachers"], "role": "owner"},
    {"paths": ["solutions/*"], "role": "none"},
    {"groups": ["teachers"], "role": "owner"},
    {"users": ["carol"], "role": "viewer"},
    {"users": ["bob"], "role": "editor"},
]
CONFIG = f"""
c.ServerApp.identity_provider_class = "tests.identity.TokenPerUser"
c.IdentityProvider.token = "unused-admin-token"
c.ServerApp.authorizer_class = "jupyter_collab.authorizers.RulesAuthorizer"
c.CollabApp.permission_policy_class = "jupyter_collab.permissions.RulesPolicy"
c.RulesPolicy.groups = {{"teachers": ["alice"]}}
c.RulesPolicy.rules = {RULES!r}
"""

# Lists the routes the configured server serves (run with its config, in its environment).
ROUTES_SCRIPT = """
import json, os, sys
from jupyter_server.serverapp import ServerApp
from tornado.routing import Router

app = ServerApp()
app.initialize(argv=sys.argv[1:])

def walk(router):
    for rule in router.rules:
        if isinstance(rule.target, Router):
            yield from walk(rule.target)
        else:
            yield rule.matcher.regex.pattern

print(json.dumps(sorted(set(walk(app.web_app.default_router)))))
sys.stdout.flush()
os._exit(0)  # the extensions' threads and loops need no orderly stop here
"""

KERNEL = "00000000-0000-0000-0000-000000000000"
# Every route, with a URL that names the solution ({p}: one of SPELLINGS) where the route
# takes a file, and whether bob must be refused outright (False: the route serves no file,
# or only its name, like JupyterLab's page for any path; no content must be in it either).
ROUTE_SAMPLES: dict[str, list[tuple[str, bool]]] = {
    r"/api/collaboration/session/(.*)$": [("/api/collaboration/session/{p}", True)],
    r"/api/collaboration/room/(.*)$": [("/api/collaboration/room/json:notebook:{file_id}", True)],
    r"/api/collaboration/permissions/recheck$": [("/api/collaboration/permissions/recheck", False)],
    r"/api/collab/v1/rooms$": [("/api/collab/v1/rooms", False)],
    r"/api/collab/v1/openapi.yaml$": [("/api/collab/v1/openapi.yaml", False)],
    r"/api/collab/v1/notebooks/(?P<path>(?:[^/]+/)*[^/]+\.ipynb)$": [("/api/collab/v1/notebooks/{p}", True)],
    r"/api/collab/v1/notebooks/(?P<path>(?:[^/]+/)*[^/]+\.ipynb)/cells$": [
        ("/api/collab/v1/notebooks/{p}/cells", True)
    ],
    r"/api/collab/v1/notebooks/(?P<path>(?:[^/]+/)*[^/]+\.ipynb)/cells/(?P<cell_id>[^/]+)$": [
        ("/api/collab/v1/notebooks/{p}/cells/S", True)
    ],
    r"/api/collab/v1/notebooks/(?P<path>(?:[^/]+/)*[^/]+\.ipynb)/cells/(?P<cell_id>[^/]+)/move$": [
        ("/api/collab/v1/notebooks/{p}/cells/S/move", True)
    ],
    r"/lsp/status$": [("/lsp/status", False)],
    r"/lsp/ws/(?P<language_server>.*)$": [("/lsp/ws/pylsp", False)],
    r"/api/fileid/id$": [("/api/fileid/id?path={p}", True)],
    r"/api/fileid/path$": [("/api/fileid/path?id={file_id}", True)],
    r"/terminals/websocket/(\w+)$": [("/terminals/websocket/1", False)],
    r"/api/terminals$": [("/api/terminals", False)],
    r"/api/terminals/(\w+)$": [("/api/terminals/1", False)],
    r"/lab/api/build$": [("/lab/api/build", False)],
    r"/lab/api/extensions$": [("/lab/api/extensions", False)],
    r"/lab/api/plugins$": [("/lab/api/plugins", False)],
    r"/lab/api/update$": [("/lab/api/update", False)],
    r"/lab/api/news$": [("/lab/api/news", False)],
    r"/(?P<mode>lab|doc)(?P<workspace>/workspaces/[a-zA-Z0-9\-\_]+)?(?P<tree>/tree/.*)?$": [
        ("/lab/tree/{p}", False),
        ("/doc/workspaces/w1/tree/{p}", False),
    ],
    r"/lab/extensions/(.*)$": [("/lab/extensions/x.js", False)],
    r"/lab/api/settings/?$": [("/lab/api/settings", False)],
    r"/lab/api/settings/(?P<schema_name>.+)$": [
        ("/lab/api/settings/@jupyterlab/notebook-extension:tracker", False)
    ],
    r"/lab/api/translations/?$": [("/lab/api/translations", False)],
    r"/lab/api/translations/(?P<locale>.*)$": [("/lab/api/translations/en", False)],
    r"/lab/api/workspaces/?$": [("/lab/api/workspaces", False)],
    r"/lab/api/workspaces/(?P<space_name>.+)$": [("/lab/api/workspaces/w1", False)],
    r"/lab/api/listings/(.*)$": [
        ("/lab/api/listings/@jupyterlab/extensionmanager-extension/listings.json", False)
    ],
    r"/lab/api/themes/(.*)$": [("/lab/api/themes/x.css", False)],
    r"/lab/api/licenses/(.*)$": [("/lab/api/licenses/", False)],
    r"/lab/.*$": [("/lab/{p}", False)],
    r"/static/lab/(.*)$": [("/static/lab/x.js", False)],
    r"/(robots\.txt)$": [("/robots.txt", False)],
    r"/(favicon\.ico)$": [("/favicon.ico", False)],
    r"/static/(.*)$": [("/static/x.js", False)],
    r"/api/spec.yaml$": [("/api/spec.yaml", False)],
    r"/api/status$": [("/api/status", False)],
    r"/api/me$": [("/api/me", False)],
    r"/api/resolvePath$": [("/api/resolvePath?path={p}", False)],
    r"/api/config/(?P<section_name>\w+)$": [("/api/config/notebook", False)],
    r"/api/contents(?P<path>(?:(?:/[^/]+)+|/?))/checkpoints$": [("/api/contents/{p}/checkpoints", True)],
    r"/api/contents(?P<path>(?:(?:/[^/]+)+|/?))/checkpoints/(?P<checkpoint_id>[\w-]+)$": [
        ("/api/contents/{p}/checkpoints/checkpoint", True)
    ],
    r"/api/contents(?P<path>(?:(?:/[^/]+)+|/?))/trust$": [("/api/contents/{p}/trust", True)],
    r"/api/contents(?P<path>(?:(?:/[^/]+)+|/?))$": [("/api/contents/{p}", True)],
    r"/api/notebooks/?(.*)$": [("/api/notebooks/{p}", True)],
    r"/api/kernels$": [("/api/kernels", False)],
    r"/api/kernels/(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)$": [(f"/api/kernels/{KERNEL}", False)],
    r"/api/kernels/(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)/(?P<action>restart|interrupt)$": [
        (f"/api/kernels/{KERNEL}/restart", False)
    ],
    r"/api/kernels/(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)/channels$": [
        (f"/api/kernels/{KERNEL}/channels", False)
    ],
    r"/kernelspecs/(?P<kernel_name>[\w\.\-%]+)/(?P<path>.*)$": [
        ("/kernelspecs/python3/logo-64x64.png", False)
    ],
    r"/api/kernelspecs$": [("/api/kernelspecs", False)],
    r"/api/kernelspecs/(?P<kernel_name>[\w\.\-%]+)$": [("/api/kernelspecs/python3", False)],
    r"/nbconvert/(?P<format>\w+)$": [("/nbconvert/html", False)],
    r"/nbconvert/(?P<format>\w+)(?P<path>(?:(?:/[^/]+)+|/?))$": [("/nbconvert/html/{p}", True)],
    r"/api/nbconvert$": [("/api/nbconvert", False)],
    r"/api/security/csp-report$": [("/api/security/csp-report", False)],
    r"/api/sessions/(?P<session_id>\w+-\w+-\w+-\w+-\w+)$": [(f"/api/sessions/{KERNEL}", False)],
    r"/api/sessions$": [("/api/sessions", False)],
    r"/api/shutdown$": [("/api/shutdown", False)],
    r"/view(?P<path>(?:(?:/[^/]+)+|/?))$": [("/view/{p}", True)],
    r"/api/events$": [("/api/events", False)],
    r"/api/events/subscribe$": [("/api/events/subscribe", False)],
    r"/files/(.*)$": [("/files/{p}", True)],
    r"/login$": [("/login", False)],
    r"/logout$": [("/logout", False)],
    r"/.*/$": [("/api/contents/{p}/", True)],
    r"/api$": [("/api", False)],
    r"/(robots\.txt|favicon\.ico)$": [("/favicon.ico", False)],
    r"/metrics$": [("/metrics", False)],
    r"/$": [("/", False)],
    r"(.*)$": [("/no-such-route/{p}", True)],
}
# JupyterLab's own API asks no Authorizer (out of our reach, see docs/deployment.md): a
# POST there would really build JupyterLab, install from PyPI or disable plugins. (And the
# licenses handler never answers a method it does not implement: JupyterLab 4.6's bug.)
READ_ONLY_PROBES = {"/lab/api/build", "/lab/api/extensions", "/lab/api/plugins", "/lab/api/licenses/"}


def notebook(sources: dict[str, str], locked: frozenset[str] = frozenset()) -> dict[str, Any]:
    nb = nbformat.v4.new_notebook()
    for cell_id, source in sources.items():
        cell = nbformat.v4.new_code_cell(source, id=cell_id)
        if cell_id in locked:
            cell.metadata.update({"editable": False, "deletable": False})
        nb.cells.append(cell)
    return json.loads(nbformat.writes(nb))


def write(root: Path, path: str, nb: dict[str, Any]) -> str:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(json.dumps(nb, indent=1))
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under the root and its bytes."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


@pytest.fixture(scope="module")
def classroom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("classroom"), extra_config=CONFIG)
    write(server.root, SOLUTION, notebook({"S": f"print({SECRET!r})"}))
    write(server.root, "public/hw.ipynb", notebook({"H": "homework = 1"}))
    server.start()
    yield server
    server.stop()


async def call(server: ServerProcess, who: str, method: str, path: str, body: Any = None) -> HTTPResponse:
    """One request as `who`, the URL sent exactly as spelled (no normalization)."""
    data = None if body is None else json.dumps(body)
    if data is None and method in ("PUT", "POST", "PATCH"):
        data = "{}"
    request = HTTPRequest(
        server.url + path,
        method=method,
        body=data,
        headers={"Authorization": f"token {who}-token", "Content-Type": "application/json"},
        allow_nonstandard_methods=True,
        follow_redirects=False,
        request_timeout=60,
    )
    return await AsyncHTTPClient().fetch(request, raise_error=False)


def served_routes(server: ServerProcess) -> list[str]:
    """The URL patterns of every handler the server registers, from its own config."""
    env = {
        **os.environ,
        "JUPYTER_DATA_DIR": str(server.base / "routes-data"),
        "JUPYTER_RUNTIME_DIR": str(server.base / "routes-runtime"),
        "JUPYTER_CONFIG_DIR": str(server.base / "config"),
        "JUPYTER_PLATFORM_DIRS": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    args = [
        f"--config={server.base / 'jupyter_server_config.py'}",
        f"--ServerApp.root_dir={server.root}",
        "--ServerApp.port=0",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_root=True",
    ]
    done = subprocess.run(
        [sys.executable, "-c", ROUTES_SCRIPT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def bodies(spelling: str) -> dict[str, Any]:
    """What bob sends with each method: overwrite, rename away, copy out."""
    stolen = notebook({"S": "print('overwritten by bob')"})
    return {
        "GET": None,
        "DELETE": None,
        "PUT": {"type": "notebook", "format": "json", "content": stolen},
        "PATCH": {"path": "public/stolen.ipynb"},
        "POST": {"copy_from": spelling, "type": "notebook"},
    }


async def test_every_route_and_every_spelling_keeps_the_solution_from_bob(classroom: ServerProcess) -> None:
    routes = served_routes(classroom)
    missing = sorted(set(routes) - set(ROUTE_SAMPLES))
    assert not missing, f"new routes need a sample in ROUTE_SAMPLES: {missing}"
    file_id = (await open_session(classroom.url, SOLUTION, "alice-token"))["fileId"]
    before = snapshot(classroom.root)
    assert SECRET.encode() in before[SOLUTION]

    probes = 0
    for pattern in routes:
        for template, must_refuse in ROUTE_SAMPLES[pattern]:
            spellings = SPELLINGS if "{p}" in template else [SOLUTION]
            for spelling in spellings:
                url = template.format(p=spelling, file_id=file_id)
                methods = ["GET"] if url in READ_ONLY_PROBES else list(bodies(spelling))
                for method in methods:
                    response = await call(classroom, "bob", method, url, bodies(spelling)[method])
                    probes += 1
                    seen = (pattern, method, url, response.code)
                    assert SECRET.encode() not in (response.body or b""), seen
                    if must_refuse:
                        assert not 200 <= response.code < 300, seen
    assert probes > 500
    assert snapshot(classroom.root) == before, "bob changed, copied or created files"

    # The room socket itself, as the browser opens it.
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(
            HTTPRequest(
                classroom.url.replace("http", "ws") + f"/api/collaboration/room/json:notebook:{file_id}",
                headers={"Authorization": "token bob-token"},
            )
        )
    assert refused.value.code == 403

    # Control: the same routes serve the solution to its owner.
    owner = await call(classroom, "alice", "GET", f"/api/contents/{SOLUTION}")
    assert owner.code == 200 and SECRET in owner.body.decode()
    assert (await call(classroom, "alice", "GET", f"/files/{SOLUTION}")).code == 200


async def test_roles_on_files_and_the_server(classroom: ServerProcess) -> None:
    async def status(who: str, method: str, path: str, body: Any = None) -> int:
        return (await call(classroom, who, method, path, body)).code

    text = {"type": "file", "format": "text", "content": "notes"}
    # bob: none on the solutions, editor elsewhere; no code runs for him.
    assert await status("bob", "GET", f"/api/contents/{SOLUTION}") == 403
    assert await status("bob", "GET", f"/files/{SOLUTION}") == 403
    assert await status("bob", "GET", "/api/contents/public/hw.ipynb") == 200
    assert await status("bob", "GET", "/files/public/hw.ipynb") == 200
    assert await status("bob", "PUT", "/api/contents/public/bob.txt", text) == 201
    assert await status("bob", "GET", "/api/kernelspecs") == 200
    assert await status("bob", "POST", "/api/kernels", {"name": "python3"}) == 403
    assert await status("bob", "POST", "/api/terminals") == 403
    assert (
        await status("bob", "POST", "/api/sessions", {"path": "public/hw.ipynb", "type": "notebook"}) == 403
    )
    # The folder may be listed (names, documented), its files not read.
    listing = await call(classroom, "bob", "GET", "/api/contents/solutions")
    assert listing.code == 200 and SECRET not in listing.body.decode()
    # carol: a viewer reads and writes nothing.
    assert await status("carol", "GET", "/api/contents/public/hw.ipynb") == 200
    assert await status("carol", "PUT", "/api/contents/public/hw.ipynb", text) == 403
    assert await status("carol", "PUT", "/api/contents/public/carol.txt", text) == 403
    assert await status("carol", "DELETE", "/api/contents/public/bob.txt") == 403
    assert await status("carol", "GET", f"/api/contents/{SOLUTION}") == 403
    # dave: no rule names him, the default role is none: nothing at all.
    assert await status("dave", "GET", "/api/contents/") == 403
    assert await status("dave", "GET", "/api/kernelspecs") == 403
    assert await status("dave", "GET", "/files/public/hw.ipynb") == 403
    # alice owns the server.
    assert await status("alice", "GET", "/api/kernels") == 200
    assert await status("alice", "PUT", "/api/contents/solutions/key.txt", text) == 201


async def test_rename_target_copy_source_and_folders_need_rights_too(classroom: ServerProcess) -> None:
    root = classroom.root
    text = {"type": "file", "format": "text", "content": "draft"}
    assert (await call(classroom, "bob", "PUT", "/api/contents/public/draft.txt", text)).code == 201
    before = snapshot(root)

    # Renaming into the solutions, or copying out of them, needs rights there.
    for target in ("solutions/draft.txt", "./solutions/draft.txt", "public/../solutions/draft.txt"):
        response = await call(classroom, "bob", "PATCH", "/api/contents/public/draft.txt", {"path": target})
        assert response.code in (400, 403, 404), target
    for source in SPELLINGS:
        response = await call(classroom, "bob", "POST", "/api/contents/public", {"copy_from": source})
        assert response.code in (400, 403, 404), source
    # A folder carries what is below it: not moved, copied or deleted by bob.
    solutions_moves = [
        ("PATCH", "/api/contents/solutions", {"path": "public/stolen"}),
        ("POST", "/api/contents/public", {"copy_from": "solutions"}),
        ("DELETE", "/api/contents/solutions", None),
    ]
    for method, url, body in solutions_moves:
        assert (await call(classroom, "bob", method, url, body)).code == 403, (method, url)
    assert snapshot(root) == before

    # Controls: the same requests within his own reach succeed.
    renamed = await call(
        classroom, "bob", "PATCH", "/api/contents/public/draft.txt", {"path": "public/d2.txt"}
    )
    assert renamed.code == 200 and (root / "public/d2.txt").exists()
    copied = await call(classroom, "bob", "POST", "/api/contents/public", {"copy_from": "public/hw.ipynb"})
    assert copied.code == 201
    folder = {"type": "directory"}
    assert (await call(classroom, "bob", "PUT", "/api/contents/public/sub", folder)).code == 201
    assert (await call(classroom, "bob", "PUT", "/api/contents/public/sub/a.txt", text)).code == 201
    moved = await call(classroom, "bob", "PATCH", "/api/contents/public/sub", {"path": "public/sub2"})
    assert moved.code == 200 and (root / "public/sub2/a.txt").exists()


async def test_only_the_owner_signs_notebooks(classroom: ServerProcess) -> None:
    # The trust endpoint signs with the server owner's key: an editor may not use it.
    assert (await call(classroom, "bob", "POST", "/api/contents/public/hw.ipynb/trust")).code == 403
    assert (await call(classroom, "alice", "POST", "/api/contents/public/hw.ipynb/trust")).code == 201

    # Nor may an editor save a notebook whose script outputs claim trust (it would be signed).
    script = {
        "output_type": "display_data",
        "metadata": {},
        "data": {"text/html": "<script>fetch('/api/terminals', {method: 'POST'})</script>"},
    }
    claimed = notebook({"T": "display()"})
    claimed["cells"][0]["outputs"] = [script]
    claimed["cells"][0]["metadata"]["trusted"] = True
    model = {"type": "notebook", "format": "json", "content": claimed}
    assert (await call(classroom, "bob", "PUT", "/api/contents/public/xss.ipynb", model)).code == 403
    assert not (classroom.root / "public/xss.ipynb").exists()
    honest = copy.deepcopy(model)
    del honest["content"]["cells"][0]["metadata"]["trusted"]
    assert (await call(classroom, "bob", "PUT", "/api/contents/public/xss.ipynb", honest)).code == 201


async def test_locked_cells_hold_on_the_contents_api(classroom: ServerProcess) -> None:
    """Needs the extension's `contents_write_refusal` (the lock rule of the rooms)."""
    root = classroom.root
    path = write(root, "public/locked.ipynb", notebook({"A": "locked = 1", "B": "free = 2"}, frozenset("A")))

    def model(nb: dict[str, Any]) -> dict[str, Any]:
        return {"type": "notebook", "format": "json", "content": nb}

    def edited(cell: str, source: str) -> dict[str, Any]:
        nb = json.loads((root / path).read_text())
        next(c for c in nb["cells"] if c["id"] == cell)["source"] = source
        return nb

    # Checkpoint taken by the owner, then the owner changes the locked cell.
    assert (await call(classroom, "alice", "POST", f"/api/contents/{path}/checkpoints")).code == 201
    assert (
        await call(classroom, "alice", "PUT", f"/api/contents/{path}", model(edited("A", "locked = 100")))
    ).code == 200
    before = (root / path).read_bytes()

    bob_put = await call(classroom, "bob", "PUT", f"/api/contents/{path}", model(edited("A", "bob = 1")))
    assert bob_put.code == 403
    as_text = {"type": "file", "format": "text", "content": json.dumps(edited("A", "bob = 2"))}
    assert (await call(classroom, "bob", "PUT", f"/api/contents/{path}", as_text)).code == 403
    restore = await call(classroom, "bob", "POST", f"/api/contents/{path}/checkpoints/checkpoint")
    assert restore.code == 403  # it would put "locked = 1" back
    assert (await call(classroom, "bob", "DELETE", f"/api/contents/{path}")).code == 403
    assert (root / path).read_bytes() == before

    # Controls: his change to the free cell is saved, and a checkpoint that leaves the
    # locked cell as it is may be restored by him.
    assert (await call(classroom, "alice", "POST", f"/api/contents/{path}/checkpoints")).code == 201
    free = await call(classroom, "bob", "PUT", f"/api/contents/{path}", model(edited("B", "free = 3")))
    assert free.code == 200 and "free = 3" in (root / path).read_text()
    restore = await call(classroom, "bob", "POST", f"/api/contents/{path}/checkpoints/checkpoint")
    assert restore.code == 204 and "free = 3" not in (root / path).read_text()


def test_startup_warns_when_the_policy_and_the_authorizer_disagree() -> None:
    log = logging.getLogger("test")
    unenforced = SimpleNamespace(authorizer=AllowAllAuthorizer())
    message = warn_if_policy_unenforced(unenforced, RulesPolicy(), log)
    assert message and "RulesAuthorizer" in message
    assert warn_if_policy_unenforced(unenforced, HubPolicy(), log)
    paired = SimpleNamespace(authorizer=RulesAuthorizer())
    assert warn_if_policy_unenforced(paired, RulesPolicy(), log) is None
    assert warn_if_policy_unenforced(paired, AuthorizerPolicy(), log)
    assert warn_if_policy_unenforced(unenforced, AuthorizerPolicy(), log) is None

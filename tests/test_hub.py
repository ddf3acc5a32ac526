"""JupyterHub integration, all real: the Hub from PyPI, configurable-http-proxy from npm,
single-user servers spawned by the Hub, users who log in through its form, a JupyterHub 5+
share, and Yjs WebSocket clients connecting through the Hub's public URL.

alice starts her server and shares one notebook with bob as a viewer: a Hub share
(`access:servers` + `custom:jupyter-collab:view` on her server) narrowed by her shares
file to that notebook. bob watches her edits live; his own edits are refused. carol gets
an edit share narrowed to a folder. The "binder" user's server runs the Binder demo config
under `jupyterhub-singleuser`, as mybinder.org does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_collab.client import RoomClient, open_session, room_url
from jupyter_collab.hub import HubPolicy
from jupyter_collab.permissions import Role

from .helpers import eventually, recheck_permissions, sources, write_notebook
from .hub_server import PROFILES, HubProcess

pytestmark = pytest.mark.timeout(300)


@dataclass
class Owner:
    """alice, logged in through the Hub, with her server started by the Hub."""

    token: str
    home: Path
    url: str  # her server through the proxy, as a browser reaches it


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    started = time.monotonic()
    hub = HubProcess(tmp_path_factory.mktemp("hub")).start()
    print(f"hub up in {time.monotonic() - started:.1f}s")
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def alice(hub: HubProcess) -> Owner:
    hub.login("alice")
    token = hub.user_token("alice")
    started = time.monotonic()
    hub.api("POST", "/users/alice/server", token)
    hub.wait_for_server("alice")
    print(f"alice's server up in {time.monotonic() - started:.1f}s")
    return Owner(token, hub.home("alice"), f"{hub.url}/user/alice")


def set_shares(owner: Owner, grants: dict | str) -> None:
    """alice edits her shares file (as in a terminal on her server)."""
    text = grants if isinstance(grants, str) else json.dumps(grants)
    (owner.home / ".jupyter-collab-shares.json").write_text(text)


async def join(server_url: str, path: str, token: str, query: str = "") -> RoomClient:
    """Join a room with the token in the Authorization header: a JupyterHub server ignores
    `?token=` on a WebSocket unless the request says `Sec-Fetch-Mode: websocket`, which
    browsers send and tornado's client does not (NotebookClient sends the header too)."""
    session = await open_session(server_url, path, token)
    client = RoomClient(room_url(server_url, session) + query, headers={"Authorization": f"token {token}"})
    return await client.connect(timeout=30)


async def test_owner_shares_one_notebook_with_a_viewer_through_the_hub(hub: HubProcess, alice: Owner) -> None:
    await asyncio.to_thread(hub.login, "bob")
    bob_token, bob_probe = [await asyncio.to_thread(hub.user_token, "bob") for _ in range(2)]
    alice_token, home, alice_url = alice.token, alice.home, alice.url
    (home / "shared").mkdir()
    shared = write_notebook(home, "shared/analysis.ipynb", ["data = 1"])
    private = write_notebook(home, "private.ipynb", ["secret = 42"])

    # Before sharing, bob cannot reach alice's server at all (the Hub says so).
    with pytest.raises(HTTPClientError) as refused:
        await open_session(alice_url, shared, bob_probe)
    assert refused.value.code == 403

    # alice shares her server with bob as a viewer (her own token, JupyterHub's share API),
    # and narrows the share to one notebook in her shares file (written as in a terminal).
    scopes = ["access:servers!server=alice/", "custom:jupyter-collab:view!server=alice/"]
    share = {"user": "bob", "scopes": scopes}
    granted = await asyncio.to_thread(hub.api, "POST", "/shares/alice/", alice_token, share)
    assert "custom:jupyter-collab:view!server=alice/" in granted["scopes"]
    # "editor" here is capped by the Hub's grant: the file never gives more than the Hub.
    set_shares(alice, {"bob": {"shared/analysis.ipynb": "editor"}})

    owner = await join(alice_url, shared, alice_token)
    bob = await join(alice_url, shared, bob_token)
    assert (owner.role, bob.role) == ("owner", "viewer")

    # bob appears in alice's presence with the identity the Hub gave him.
    def bobs_state() -> dict | None:
        return next((s["user"] for s in owner.awareness.values() if s["user"]["username"] == "bob"), None)

    bob.set_awareness({"cursor": 1})
    stamped = await eventually(bobs_state, timeout=20)
    assert stamped["display_name"] == PROFILES["bob"]["display_name"]
    assert stamped["avatar_url"] == PROFILES["bob"]["avatar_url"]
    assert stamped["role"] == "viewer"

    # alice's edits reach bob live.
    owner.notebook().ycells[0]["source"].insert(0, "# live from alice\n")
    await eventually(lambda: sources(bob) == ["# live from alice\ndata = 1"], timeout=20)
    await eventually(lambda: "live from alice" in (home / shared).read_text(), timeout=20)
    disk_before = (home / shared).read_text()

    # bob's edit is refused: he is told, closed with 1003, and nothing reaches alice or disk.
    bob.notebook().ycells[0]["source"].insert(0, "# bob was here\n")
    code, reason = await bob.wait_closed(timeout=20)
    assert code == 1003 and json.loads(reason)["reason"] == "permission_denied"
    assert any(n.get("type") == "denied" and n.get("role") == "viewer" for n in bob.notices)
    await asyncio.sleep(1.0)  # longer than the save delays: a refused edit would be on disk by now
    assert sources(owner) == ["# live from alice\ndata = 1"]
    assert (home / shared).read_text() == disk_before

    # The share covers that notebook only: not her other notebooks, nor the shares file
    # (a file the caller may not see answers as a missing one does: 404).
    for path in (private, ".jupyter-collab-shares.json"):
        with pytest.raises(HTTPClientError) as other:
            await open_session(alice_url, path, bob_token)
        assert other.value.code == 404, path
    # alice herself still owns everything on her server.
    assert (await open_session(alice_url, private, alice_token))["fileId"]

    # Nor can the viewer get around the room through the server's own API (HubAuthorizer):
    # he may read the shared file (and list the folders on the way to it), but not her
    # other files, nor write files, start kernels (run code as alice) or terminals.
    def status(method: str, api: str, token: str = bob_token, body: object = None) -> int:
        return hub.server_api(method, f"{alice_url}/api/{api}", token, body)

    new_file = {"type": "file", "format": "text", "content": "x"}
    assert await asyncio.to_thread(status, "GET", f"contents/{shared}") == 200
    assert await asyncio.to_thread(status, "GET", "contents/shared") == 200
    assert await asyncio.to_thread(status, "GET", "contents/") == 200
    assert await asyncio.to_thread(status, "GET", f"contents/{private}") == 403
    assert await asyncio.to_thread(hub.server_api, "GET", f"{alice_url}/files/{private}", bob_token) == 403
    assert await asyncio.to_thread(status, "PUT", "contents/bob.txt", bob_token, new_file) == 403
    assert await asyncio.to_thread(status, "POST", "kernels", bob_token, {"name": "python3"}) == 403
    assert await asyncio.to_thread(status, "POST", "terminals") == 403
    assert await asyncio.to_thread(status, "PUT", "contents/alice.txt", alice_token, new_file) == 201
    # Other spellings of her other notebook are refused, not resolved (security review C1).
    for alias in (
        "shared/../private.ipynb",
        "./private.ipynb",
        "shared/%2E%2E/private.ipynb",
        "private.ipynb/.",
    ):
        assert await asyncio.to_thread(status, "GET", f"contents/{alias}") in (400, 403, 404), alias
        files = await asyncio.to_thread(hub.server_api, "GET", f"{alice_url}/files/{alias}", bob_token)
        assert files in (400, 403, 404), alias

    # Revoking the share on the Hub locks bob out: his open connection at the next
    # permission re-check (the servers here cache the Hub's answers for 1 s, see
    # docs/deployment.md), and any new request.
    bob = await join(alice_url, shared, bob_token)
    assert bob.role == "viewer"
    await asyncio.to_thread(hub.api, "PATCH", "/shares/alice/", alice_token, share)
    await asyncio.sleep(1.5)
    await recheck_permissions(SimpleNamespace(url=alice_url), alice_token)
    code, _ = await bob.wait_closed(timeout=20)
    assert code == 4403
    with pytest.raises(HTTPClientError) as revoked:
        await open_session(alice_url, shared, bob_token)
    assert revoked.value.code == 403
    await owner.close()


async def test_edit_share_narrowed_to_a_folder_granted_to_a_hub_group(hub: HubProcess, alice: Owner) -> None:
    await asyncio.to_thread(hub.login, "carol")
    carol = await asyncio.to_thread(hub.user_token, "carol")
    (alice.home / "team").mkdir()
    plan = write_notebook(alice.home, "team/plan.ipynb", ["todo = []"])
    other = write_notebook(alice.home, "other.ipynb", ["x = 1"])
    # carol is an analyst (a JupyterHub group); alice grants her team folder to analysts.
    await asyncio.to_thread(hub.api, "POST", "/groups/analysts", body={"users": ["carol"]})
    set_shares(alice, {"group:analysts": {"team/": "editor"}})

    # A plain JupyterHub share (access to the server, none of our scopes): no role.
    await asyncio.to_thread(hub.api, "POST", "/shares/alice/", alice.token, {"user": "carol"})
    with pytest.raises(HTTPClientError) as plain:
        await open_session(alice.url, plan, carol)
    assert plain.value.code == 404

    # Shared with her with the edit scope, she is an editor in the folder alice granted her
    # group, and nowhere else. (The Hub share names her, not her group: JupyterHub 6.1 does
    # not carry a group share's scopes into its members' tokens; see docs/deployment.md.)
    edit = ["access:servers!server=alice/", "custom:jupyter-collab:edit!server=alice/"]
    await asyncio.to_thread(hub.api, "POST", "/shares/alice/", alice.token, {"user": "carol", "scopes": edit})
    await asyncio.sleep(1.5)  # the server's cache of the Hub's answers (1 s here)
    owner = await join(alice.url, plan, alice.token)
    editor = await join(alice.url, plan, carol)
    assert editor.role == "editor"
    editor.notebook().ycells[0]["source"].insert(0, "# carol\n")
    await eventually(lambda: sources(owner) == ["# carol\ntodo = []"], timeout=20)
    await eventually(lambda: "# carol" in (alice.home / plan).read_text(), timeout=20)
    with pytest.raises(HTTPClientError) as elsewhere:
        await open_session(alice.url, other, carol)
    assert elsewhere.value.code == 404

    # Her role lets her write files in that folder, but not run code as alice (HubAuthorizer).
    def status(method: str, api: str, body: object) -> int:
        return hub.server_api(method, f"{alice.url}/api/{api}", carol, body)

    new_file = {"type": "file", "format": "text", "content": "notes"}
    assert await asyncio.to_thread(status, "PUT", "contents/team/notes.txt", new_file) == 201
    assert await asyncio.to_thread(status, "PUT", "contents/notes.txt", new_file) == 403  # not her folder
    assert await asyncio.to_thread(status, "POST", "kernels", {"name": "python3"}) == 403

    # Writes are decided on every path they touch (review M6): not a rename out of her
    # folder, a copy from elsewhere into it, nor signing a notebook with alice's key.
    assert await asyncio.to_thread(status, "PATCH", "contents/team/notes.txt", {"path": "notes.txt"}) == 403
    assert await asyncio.to_thread(status, "POST", "contents/team", {"copy_from": other}) == 403
    assert await asyncio.to_thread(status, "POST", f"contents/{plan}/trust", {}) == 403
    assert await asyncio.to_thread(status, "PUT", "contents/team/../notes.txt", new_file) in (400, 403, 404)
    assert not (alice.home / "notes.txt").exists()

    # The most specific statement wins (review M5): alice lets everyone she shared with
    # watch, and keeps carol (an analyst editor in team/) out of team/secret/.
    (alice.home / "team" / "secret").mkdir()
    (alice.home / "team" / "secret" / "s.txt").write_text("secret")
    set_shares(
        alice,
        {"*": {"*": "viewer"}, "group:analysts": {"team/": "editor"}, "carol": {"team/secret/": "none"}},
    )
    assert await asyncio.to_thread(status, "GET", f"contents/{other}", None) == 200
    assert await asyncio.to_thread(status, "PUT", f"contents/{other}", new_file) == 403
    assert await asyncio.to_thread(status, "GET", "contents/team/secret/s.txt", None) == 403
    assert await asyncio.to_thread(status, "PUT", "contents/team/notes2.txt", new_file) == 201

    # A shares file alice broke gives nobody but her any access until she fixes it.
    set_shares(alice, "{not json")
    with pytest.raises(HTTPClientError) as broken:
        await open_session(alice.url, plan, carol)
    assert broken.value.code == 404
    assert (await open_session(alice.url, plan, alice.token))["fileId"]
    for client in (owner, editor):
        await client.close()


def test_shares_file_most_specific_statement_wins() -> None:
    """The owner's shares file, without a Hub: precedence and the folder form of patterns."""
    policy = HubPolicy()
    bob = {"name": "bob", "groups": ["staff"]}
    # A user's own entry carves an exception out of a grant to everyone.
    grants = {"*": {"*": "viewer"}, "bob": {"secret/*": "none"}}
    assert policy.path_role(grants, bob, "secret/plan.ipynb") is Role.NONE
    assert policy.path_role(grants, bob, "secret/deeper/plan.ipynb") is Role.NONE  # `*` crosses folders
    assert policy.path_role(grants, bob, "public/hw.ipynb") is Role.VIEWER
    # Groups come before everyone.
    grants = {"*": {"reports/": "none"}, "group:staff": {"reports/*": "editor"}}
    assert policy.path_role(grants, bob, "reports/q3.ipynb") is Role.EDITOR
    # Within an entry: an exact path over globs, then the longest literal start, none on ties.
    grants = {
        "bob": {
            "reports/": "editor",
            "reports/*": "viewer",
            "reports/draft.ipynb": "editor",
            "reports/old/": "none",
            "reports/old/keep.ipynb": "viewer",
        }
    }
    assert policy.path_role(grants, bob, "reports/q3.ipynb") is Role.VIEWER  # tie: the weaker
    assert policy.path_role(grants, bob, "reports/draft.ipynb") is Role.EDITOR
    assert policy.path_role(grants, bob, "reports/old/2019.ipynb") is Role.NONE
    assert policy.path_role(grants, bob, "reports/old/keep.ipynb") is Role.VIEWER
    assert policy.path_role(grants, bob, "reports") is Role.EDITOR  # `x/` is the folder too
    assert policy.path_role(grants, bob, "elsewhere.ipynb") is Role.NONE  # listed: only what matches
    assert policy.path_role(grants, {"name": "carol"}, "reports/q3.ipynb") is None  # not listed


async def test_binder_demo_identity_under_jupyterhub_singleuser(hub: HubProcess) -> None:
    """mybinder.org runs `jupyterhub-singleuser`, which replaces the configured identity
    provider with JupyterHub's: the demo extension still makes visitors, and links pick roles."""
    await asyncio.to_thread(hub.login, "binder")
    token = await asyncio.to_thread(hub.user_token, "binder")
    await asyncio.to_thread(hub.api, "POST", "/users/binder/server", token)
    await asyncio.to_thread(hub.wait_for_server, "binder")
    path = write_notebook(hub.home("binder"), "welcome.ipynb", ["hello"])
    url = f"{hub.url}/user/binder"
    visitor = await join(url, path, token)
    viewer = await join(url, path, token, "&role=viewer")
    assert (visitor.role, viewer.role) == ("editor", "viewer")
    viewer.set_awareness({"cursor": 1})
    stamped = await eventually(
        lambda: next((s["user"] for s in visitor.awareness.values() if s["user"]["role"] == "viewer"), None),
        timeout=20,
    )
    assert stamped["display_name"].startswith("Demo ") and stamped["username"].startswith("demo-")
    viewer.notebook().ycells[0]["source"].insert(0, "no ")
    code, _ = await viewer.wait_closed(timeout=20)
    assert code == 1003 and sources(visitor) == ["hello"]
    await visitor.close()

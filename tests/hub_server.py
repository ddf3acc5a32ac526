"""A real JupyterHub for the tests: the Hub, configurable-http-proxy from npm, and
single-user servers with jupyter-collab spawned by SimpleLocalProcessSpawner.

Everything listens on free loopback ports and lives in one temporary directory; users log
in through the Hub's own login form (so the authenticator's `user_info`, their display name
and avatar, reaches the single-user servers as it would in production). The proxy is
installed once with npm into `tests/.hub-cache/` (ignored by git) when it is not on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from functools import partial
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

from jupyterhub.auth import DummyAuthenticator

from .harness import REPO, ManagedProcess, free_port, http_ready, pythonpath

CACHE = Path(__file__).resolve().parent / ".hub-cache"
CHP_VERSION = "^5"
ADMIN_TOKEN = "hub-test-admin-token"  # a service of the test Hub, only on loopback

PROFILES = {
    "alice": {"display_name": "Alice Analyst", "avatar_url": "https://example.org/alice.png"},
    "bob": {"display_name": "Bob Reader", "avatar_url": "https://example.org/bob.png"},
    "carol": {"display_name": "Carol Coauthor", "avatar_url": "https://example.org/carol.png"},
    "binder": {"display_name": "Binder User"},  # whose server runs the Binder demo config
}


class ProfileAuthenticator(DummyAuthenticator):
    """Any password; the user's profile goes to the Hub as `user_info` (JupyterHub >= 5.3)."""

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        name = data.get("username", "")
        if name not in PROFILES:
            return None
        return {"name": name, "user_info": {"name": name, **PROFILES[name]}}


def configurable_http_proxy() -> str:
    """The proxy's executable: from PATH, else npm-installed once into the cache."""
    found = shutil.which("configurable-http-proxy")
    if found:
        return found
    executable = CACHE / "node_modules" / ".bin" / "configurable-http-proxy"
    if not executable.exists():
        CACHE.mkdir(exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n")
        subprocess.run(
            ["npm", "install", "--prefix", str(CACHE), "--no-audit", "--no-fund",
             f"configurable-http-proxy@{CHP_VERSION}"],
            check=True,
            capture_output=True,
            timeout=300,
        )  # fmt: skip
    return str(executable)


HUB_CONFIG = """
import sys
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.pid_file = {base!r} + "/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + {base!r} + "/hub.sqlite"
c.JupyterHub.cookie_secret_file = {base!r} + "/cookie_secret"
c.JupyterHub.authenticator_class = "tests.hub_server.ProfileAuthenticator"
c.Authenticator.allowed_users = {{"alice", "bob", "carol", "binder"}}

# The Hub side of jupyter-collab (docs/deployment.md): our two scopes, users may share
# them on their own servers, and the single-user servers' browser tokens may carry them.
c.JupyterHub.custom_scopes = {{
    "custom:jupyter-collab:view": {{"description": "Watch notebooks live on a shared server."}},
    "custom:jupyter-collab:edit": {{
        "description": "Edit notebooks live on a shared server.",
        "subscopes": ["custom:jupyter-collab:view"],
    }},
}}
c.JupyterHub.load_roles = [
    {{
        "name": "user",
        "scopes": ["self", "shares!user", "read:users:name", "read:groups:name",
                   "custom:jupyter-collab:edit!user"],
    }},
    {{
        "name": "test-admin",
        "scopes": ["admin:users", "admin:servers", "admin:groups", "tokens", "read:users"],
        "services": ["test-admin"],
    }},
]
c.JupyterHub.services = [{{"name": "test-admin", "api_token": {admin_token!r}}}]
c.Spawner.oauth_client_allowed_scopes = [
    "custom:jupyter-collab:edit!server", "custom:jupyter-collab:view!server",
]

# Single-user servers: this Python, as the Hub's own Unix user, each in its own home.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {base!r} + "/home/{{username}}"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--allow-root"]
c.Spawner.environment = {{
    "PYTHONPATH": {pythonpath!r},
    "JUPYTER_PLATFORM_DIRS": "0",
    # Per user (see HubProcess.start): the "binder" user's server runs the Binder demo.
    "JUPYTER_CONFIG_DIR": lambda spawner: {base!r} + "/jupyter-config/" + spawner.user.name,
    "JUPYTER_DATA_DIR": lambda spawner: {base!r} + "/data/" + spawner.user.name,
    "JUPYTER_RUNTIME_DIR": lambda spawner: {base!r} + "/runtime/" + spawner.user.name,
}}
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
"""

SINGLEUSER_CONFIG = """
c.ServerApp.jpserver_extensions.update({"jupyter_collab": True})
c.HubAuth.cache_max_age = 1  # revocations on the Hub reach the server within a second
c.CollabApp.document_save_delay = 0.2
c.CollabApp.max_save_delay = 0.5
c.CollabApp.file_poll_interval = 0.2
"""
HUB_POLICY_CONFIG = """
c.CollabApp.permission_policy_class = "jupyter_collab.hub.HubPolicy"
c.ServerApp.authorizer_class = "jupyter_collab.hub.HubAuthorizer"
"""


class HubProcess(ManagedProcess):
    """`jupyterhub` in a subprocess; `api()` speaks its REST API with a token."""

    stop_timeout = 30.0  # on SIGTERM the Hub stops the servers it spawned and the proxy

    def __init__(self, base: Path) -> None:
        super().__init__(base / "hub.log")
        self.base = base
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> HubProcess:
        base = str(self.base)
        (self.base / "home").mkdir(parents=True, exist_ok=True)
        for user in PROFILES:
            config_dir = self.base / "jupyter-config" / user
            config_dir.mkdir(parents=True, exist_ok=True)
            demo = (REPO / "binder" / "jupyter_server_config.py").read_text()
            extra = demo if user == "binder" else HUB_POLICY_CONFIG
            (config_dir / "jupyter_server_config.py").write_text(SINGLEUSER_CONFIG + extra)
        config = HUB_CONFIG.format(
            port=self.port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=configurable_http_proxy(),
            base=base,
            admin_token=ADMIN_TOKEN,
            pythonpath=pythonpath(),  # the servers it spawns import jupyter_collab
        )
        (self.base / "jupyterhub_config.py").write_text(config)
        self.launch(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.base / "jupyterhub_config.py")],
            ready=partial(http_ready, f"{self.url}/hub/api/"),  # through the proxy: 2xx once routed
            timeout=timeout,
            cwd=self.base,
            env={**os.environ, "PYTHONPATH": pythonpath()},  # the Hub imports our test authenticator
            interval=0.2,
        )
        return self

    def api(self, method: str, path: str, token: str = ADMIN_TOKEN, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"{self.url}/hub/api{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def server_api(self, method: str, url: str, token: str, body: Any = None) -> int:
        """The HTTP status of a single-user server's REST call (through the proxy)."""
        request = urllib.request.Request(
            url,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def login(self, username: str) -> None:
        """Log in through the Hub's login form, as a browser does (sets the user's user_info)."""
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar := CookieJar()))
        opener.open(f"{self.url}/hub/login", timeout=30).read()
        xsrf = next(cookie.value for cookie in jar if cookie.name == "_xsrf")
        form = urllib.parse.urlencode({"username": username, "password": "any", "_xsrf": xsrf})
        # The Hub redirects to spawn the user's server; that is the next step's business.
        opener.open(f"{self.url}/hub/login?next=/hub/home", data=form.encode(), timeout=30).read()

    def user_token(self, username: str) -> str:
        """An API token with all the user's permissions, including those shared with them later."""
        body = {"note": "jupyter-collab test", "scopes": ["inherit"]}
        return self.api("POST", f"/users/{username}/tokens", body=body)["token"]

    def wait_for_server(self, username: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api("GET", f"/users/{username}").get("servers", {}).get("")
            if server and server.get("ready"):
                return
            time.sleep(0.3)
        raise RuntimeError(f"{username}'s server did not become ready:\n{self.log()}")

    def home(self, username: str) -> Path:
        return self.base / "home" / username


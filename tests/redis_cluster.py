"""Test support for scale-out: a real `redis-server` and Jupyter servers sharing one root.

The Redis server runs on a free loopback port in a temp directory, without persistence
(`--save "" --appendonly no`), so killing and starting it again on the same port is a
restart that loses every key, the worst case the backplane must survive. The Jupyter
servers share the notebook root and the file-id database (as replicas behind a load
balancer must, so that a room id names the same file everywhere), each with its own data
directory and history store. Users are the test identities (one token each, roles from a
JSON file shared by the cluster), and every process records its saves in `saves.log` next
to the root, so that tests can tell which process wrote the file when.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from jupyter_collab.client import RoomClient, open_session, room_url

from .server import ServerProcess, free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
ROLES = {"alice": "owner", "bob": "editor", "carol": "viewer"}
TOKEN = "alice-token"


def record_save(model: Any, path: str, contents_manager: Any, **kwargs: Any) -> None:
    """A pre-save hook: which process saved which file (one line per save)."""
    log = Path(contents_manager.root_dir).parent / "saves.log"
    with open(log, "a") as handle:
        handle.write(json.dumps({"pid": os.getpid(), "path": path}) + "\n")


class RedisServer:
    def __init__(self, base: Path) -> None:
        self.dir = base
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        args += ["--save", "", "--appendonly", "no"]
        log = open(self.dir / "redis.log", "a")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: every key is lost (no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> RedisServer:
        self.kill()
        return self.start()


class ClusterServer(ServerProcess):
    """A Jupyter server process of a scale-out cluster: shared root, own data directory."""

    def __init__(self, base: Path, root: Path, redis: RedisServer, config: dict[str, Any] | None = None):
        extra = [
            f"c.BaseFileIdManager.db_path = {str(root.parent / 'file_id.db')!r}",
            'c.ServerApp.identity_provider_class = "tests.identity.TokenPerUser"',
            'c.IdentityProvider.token = "unused-admin-token"',
            'c.CollabApp.permission_policy_class = "tests.identity.RolesFilePolicy"',
            f"c.RolesFilePolicy.roles_file = {str(root.parent / 'roles.json')!r}",
            'c.ContentsManager.pre_save_hook = "tests.redis_cluster.record_save"',
        ]
        super().__init__(
            base, config={"backplane_url": redis.url, **(config or {})}, extra_config="\n".join(extra)
        )
        self.root = root

    def saves(self, path: str) -> list[int]:
        """Process ids of every save of `path` by the cluster, in order."""
        log = self.root.parent / "saves.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [entry["pid"] for entry in map(json.loads, lines) if entry["path"] == path]


def set_roles(root: Path, roles: dict[str, str]) -> None:
    (root.parent / "roles.json").write_text(json.dumps(roles))


def make_cluster(base: Path, redis: RedisServer, count: int, **config: Any) -> list[ClusterServer]:
    root = base / "shared-root"
    root.mkdir(parents=True, exist_ok=True)
    set_roles(root, ROLES)
    return [ClusterServer(base / f"srv{i}", root, redis, config) for i in range(count)]


async def join_at(server: ServerProcess, path: str, token: str = TOKEN, **options: Any) -> RoomClient:
    session = await open_session(server.url, path, token)
    return await RoomClient(room_url(server.url, session, token), **options).connect()


async def move_to(client: RoomClient, server: ServerProcess) -> RoomClient:
    """Reconnect `client` (its document and offline edits kept) to another process, as a
    browser tab behind a load balancer does when its server goes away."""
    ws_base = server.url.replace("http://", "ws://", 1)
    client.url = ws_base + client.url[client.url.index("/api/") :]
    return await client.connect()

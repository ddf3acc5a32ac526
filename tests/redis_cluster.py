"""Test support for scale-out: a real `redis-server` and Jupyter servers sharing one root.

The Redis server runs on a free loopback port in a temp directory, without persistence
(`--save "" --appendonly no`), so killing and starting it again on the same port is a
restart that loses every key, the worst case the backplane must survive. It can also be
secured as the README asks: a password for the default user (`requirepass`), the
backplane's own ACL user (`BACKPLANE_ACL`) and a TLS port with a throwaway CA. The Jupyter
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
import socket
import subprocess
from pathlib import Path
from typing import Any

import redis

from jupyter_collab.client import RoomClient, open_session, room_url

from .harness import ManagedProcess, free_port
from .server import ServerProcess
from .team import ROLES

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
OPENSSL = shutil.which("openssl")
ACL_USER = "jupyter-collab"
# The README's ACL rule for the backplane (after "user jupyter-collab on >password"): its
# keys and channels only, and only the commands it sends. (redis-py also sends CLIENT
# SETINFO, Redis 7.2+, and carries on when it is refused; naming it would stop a Redis
# older than 7.2 from starting.)
BACKPLANE_ACL = (
    "resetchannels ~collab:* &collab:* -@all +ping +info +select +multi +exec "
    "+evalsha +script|load +script|exists +get +set +del +exists +expire +pexpire "
    "+hset +hgetall +hexists +hdel +xadd +xread +xrange +xtrim +xinfo|stream "
    "+publish +subscribe +unsubscribe"
)
TOKEN = "alice-token"


def record_save(model: Any, path: str, contents_manager: Any, **kwargs: Any) -> None:
    """A pre-save hook: which process saved which file (one line per save)."""
    log = Path(contents_manager.root_dir).parent / "saves.log"
    with open(log, "a") as handle:
        handle.write(json.dumps({"pid": os.getpid(), "path": path}) + "\n")


class RedisServer(ManagedProcess):
    def __init__(
        self, base: Path, *, password: str | None = None, acl_password: str | None = None, tls: bool = False
    ) -> None:
        base.mkdir(parents=True, exist_ok=True)
        super().__init__(base / "redis.log")
        self.dir = base
        self.port = free_port()
        self.password = password  # of the default user (requirepass)
        self.acl_password = acl_password  # of ACL_USER, with BACKPLANE_ACL
        self.tls_port = free_port() if tls else 0

    @property
    def url(self) -> str:
        """The default user's URL (with the password, if there is one)."""
        return self.url_as("", self.password or "")

    def url_as(self, user: str, password: str, *, tls: bool = False) -> str:
        credentials = f"{user}:{password}@" if password else ""
        if tls:
            return f"rediss://{credentials}127.0.0.1:{self.tls_port}/0?ssl_ca_certs={self.dir / 'ca.pem'}"
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A synchronous client as the default user (for tests that write to Redis)."""
        return redis.Redis(port=self.port, password=self.password)

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        args += ["--save", "", "--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.acl_password:
            args += ["--user", ACL_USER, "on", f">{self.acl_password}", *BACKPLANE_ACL.split()]
        if self.tls_port:
            self._make_certificates()
            args += [
                "--tls-port",
                str(self.tls_port),
                "--tls-auth-clients",
                "no",
                "--tls-ca-cert-file",
                "ca.pem",
            ]
            args += ["--tls-cert-file", "server.pem", "--tls-key-file", "server.key"]
        self.launch(args, ready=self._answers_ping, timeout=timeout, cwd=self.dir, interval=0.05)
        return self

    def _answers_ping(self) -> bool:
        """PONG, or NOAUTH from a server with a password: it is serving either way."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def _make_certificates(self) -> None:
        """A throwaway CA and a certificate for 127.0.0.1 signed by it."""
        if (self.dir / "server.pem").exists():
            return
        assert OPENSSL is not None, "TLS needs the openssl command"

        def openssl(command: str) -> None:
            subprocess.run([OPENSSL, *command.split()], cwd=self.dir, check=True, capture_output=True)

        openssl("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-CA -keyout ca.key -out ca.pem")
        openssl("req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr")
        (self.dir / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        openssl(
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
            "-extfile san.ext -out server.pem"
        )


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


def room_of(client: RoomClient) -> str:
    """The room id in the client's socket URL (the `{room}` of the Redis keys)."""
    return client.url.split("/room/")[1].split("?")[0]

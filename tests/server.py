"""A real Jupyter server in a subprocess, with jupyter-collab enabled, for the tests.

Each server gets its own root, data and runtime directories, a free loopback port and a
token; it can be stopped with SIGTERM, killed with SIGKILL and restarted on the same
directories (so its history store and file ids survive, like a real restart).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TOKEN = "test-token"
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(
        self,
        base: Path,
        *,
        config: dict[str, Any] | None = None,
        app: str = "jupyter_server",
        extra_config: str = "",
    ) -> None:
        self.base = base
        self.app = app  # "jupyter_server", or "jupyterlab" to serve the JupyterLab UI too
        self.extra_config = extra_config  # Python lines for the config file (other apps)
        self.root = base / "root"
        self.data = base / "data"
        self.root.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        self.config = {
            "document_save_delay": 0.2,
            "max_save_delay": 0.5,
            "room_close_delay": 2.0,
            "file_poll_interval": 0.2,
            **(config or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path = base / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.port = self.port or free_port()  # a restart keeps its address, like a real one
        config_file = self.base / "jupyter_server_config.py"
        lines = [f"c.CollabApp.{name} = {value!r}" for name, value in self.config.items()]
        config_file.write_text("\n".join([*lines, self.extra_config]) + "\n")
        env = {
            **os.environ,
            "JUPYTER_DATA_DIR": str(self.data),
            "JUPYTER_RUNTIME_DIR": str(self.base / "runtime"),
            "JUPYTER_CONFIG_DIR": str(self.base / "config"),
            "JUPYTER_PLATFORM_DIRS": "0",
            # The tests' identity provider and policies are importable by the server.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        args = [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--config={config_file}",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.log_level=INFO",
        ]
        log = open(self.log_path, "a")  # noqa: SIM115 - lives as long as the process
        log.write(f"\n==== start {time.ctime()}\n")
        log.flush()
        self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.base)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={TOKEN}", timeout=1)
                return self
            except urllib.error.HTTPError:
                return self  # it answers (the token may not be a user of this server)
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def terminate(self, timeout: float = 20.0) -> float:
        """SIGTERM; returns how long the server took to exit."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        return time.monotonic() - started

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

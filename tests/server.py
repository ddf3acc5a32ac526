"""A real Jupyter server in a subprocess, with jupyter-collab enabled, for the tests.

Each server gets its own root, data and runtime directories, a free loopback port and a
token; it can be stopped with SIGTERM, killed with SIGKILL and restarted on the same
directories (so its history store and file ids survive, like a real restart).
"""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

from .harness import ManagedProcess, free_port, http_ready, pythonpath

TOKEN = "test-token"


class ServerProcess(ManagedProcess):
    def __init__(
        self,
        base: Path,
        *,
        config: dict[str, Any] | None = None,
        app: str = "jupyter_server",
        extra_config: str = "",
    ) -> None:
        super().__init__(base / "server.log")
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
        self.port = 0

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
            "PYTHONPATH": pythonpath(),  # the tests' identity provider and policies
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
        # Any HTTP answer will do: the token may not be a user of this server.
        ready = partial(http_ready, f"{self.url}/api/status?token={TOKEN}", any_status=True)
        self.launch(args, ready=ready, timeout=timeout, cwd=self.base, env=env)
        return self

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

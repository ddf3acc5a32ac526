"""The servers under test: ours (this environment's Python) and the reference
(jupyter-collaboration 5.0.4 in a virtualenv of its own), each a real Jupyter server in a
subprocess on a loopback port, with its own root, data, runtime and config directories.

Both run the same Jupyter server stack with only the collaboration extension and the file
id service enabled (JupyterLab's, LSP's, terminals' and notebook_shim's server extensions
are switched off on both: they serve nothing the benchmark touches and only blur the
memory figures). Everything else is each project's default configuration.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TOKEN = "bench-token"  # user "bench"; "bench-token-<n>" is user n (see identity.py)


def user_token(n: int) -> str:
    return f"{TOKEN}-{n}"


REFERENCE_SPEC = "jupyter-collaboration==5.0.4"
HERE = Path(__file__).resolve().parent
REFERENCE_VENV = HERE / ".venv-reference"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# Server extensions that either environment may have installed and that play no part here.
UNRELATED_EXTENSIONS = ["jupyterlab", "jupyter_lsp", "notebook_shim", "jupyter_server_terminals", "nbclassic"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_nofile(limit: int | None = None) -> int:
    """Raise this process's open-file limit towards the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if limit is None else min(hard, max(limit, soft))
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _child_setup() -> None:
    """In the server process before exec: a higher open-file limit, and a SIGTERM when
    the runner dies, so that no server outlives an interrupted run."""
    raise_nofile()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def reference_python() -> Path:
    return REFERENCE_VENV / "bin" / "python"


def reference_ready() -> bool:
    return (REFERENCE_VENV / ".installed").exists() and reference_python().exists()


def build_reference(log=print) -> Path:
    """Create benchmarks/.venv-reference with jupyter-collaboration 5.0.4 (once)."""
    if reference_ready():
        return reference_python()
    log(f"building the reference environment ({REFERENCE_SPEC}) in {REFERENCE_VENV} ...")
    started = time.monotonic()
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(REFERENCE_VENV)], check=True)
    pip = [str(reference_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, REFERENCE_SPEC], check=True)
    (REFERENCE_VENV / ".installed").write_text(REFERENCE_SPEC + "\n")
    log(f"reference environment ready in {time.monotonic() - started:.0f} s")
    return reference_python()


def package_versions(python: str | Path, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    result = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


@dataclass
class ProcSample:
    t: float
    cpu: float  # seconds of CPU (user + system, all threads)
    rss: int  # bytes


def proc_sample(pid: int) -> ProcSample:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * PAGE
    return ProcSample(time.monotonic(), cpu, rss)


def cpu_share(a: ProcSample, b: ProcSample) -> float:
    """Share of one core used between two samples (1.0 = a full core)."""
    return (b.cpu - a.cpu) / max(b.t - a.t, 1e-9)


class Server:
    """A Jupyter server with one collaboration implementation, in a subprocess."""

    def __init__(self, impl: str, base: Path, python: str | Path, config: dict | None = None) -> None:
        """`config`: extra Jupyter config (e.g. {"CollabApp": {...}}) for experiments."""
        assert impl in ("ours", "reference")
        self.extra_config = config or {}
        self.impl = impl
        self.base = base
        self.python = str(python)
        self.root = base / "root"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path = base / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def sample(self) -> ProcSample:
        return proc_sample(self.pid)

    def start(self, timeout: float = 60.0) -> Server:
        return self.launch().wait_ready(timeout)

    def launch(self) -> Server:
        """Start the process (without waiting for it to listen)."""
        shutil.rmtree(self.base, ignore_errors=True)  # every run starts from nothing
        for sub in ("root", "data", "runtime", "config"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        extensions = {name: False for name in UNRELATED_EXTENSIONS}
        if self.impl == "ours":
            extensions["jupyter_collab"] = True
        else:
            extensions["jupyter_server_ydoc"] = True
        config = {
            "ServerApp": {
                "jpserver_extensions": extensions,
                "identity_provider_class": "bench_identity.BenchUsers",
            }
        }
        for section, values in self.extra_config.items():
            config.setdefault(section, {}).update(values)
        shutil.copyfile(HERE / "identity.py", self.base / "bench_identity.py")
        config_file = self.base / "jupyter_server_config.json"
        config_file.write_text(json.dumps(config))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("JUPYTER", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"))
        }
        env.update(
            {
                "JUPYTER_DATA_DIR": str(self.base / "data"),
                "JUPYTER_RUNTIME_DIR": str(self.base / "runtime"),
                "JUPYTER_CONFIG_DIR": str(self.base / "config"),
                "JUPYTER_PLATFORM_DIRS": "0",
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(self.base),  # for bench_identity only
            }
        )
        args = [
            self.python,
            "-m",
            "jupyter_server",
            f"--config={config_file}",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={self.root}",
        ]
        log = open(self.log_path, "a")  # noqa: SIM115 - lives as long as the process
        log.write(f"\n==== start {time.ctime()}: {' '.join(args)}\n")
        log.flush()
        self.proc = subprocess.Popen(
            args,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.base,  # the reference keeps its .jupyter_ystore.db in the working directory
            preexec_fn=_child_setup,
        )
        return self

    def wait_ready(self, timeout: float = 60.0) -> Server:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.impl} server exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={TOKEN}", timeout=1)
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.impl} server did not start in {timeout} s; see {self.log_path}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

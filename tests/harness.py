"""One way to run the tests' server processes (Jupyter servers, the Hub, redis-server).

Every such process has the same life: a free loopback port chosen before it starts, output
appended to a log file, a wait until it answers (failing with the end of its log when it
exits or takes too long), and a stop that sends SIGTERM, then SIGKILL when it lingers.

No child outlives the test run: a process that does not come up is killed before the error
is raised, and any process still running when the interpreter exits (a fixture that never
reached its teardown) is killed then. Children stay in pytest's process group, so a Ctrl-C
in the terminal reaches them too; the children *they* start (kernels, the Hub's proxy and
single-user servers) sit in sessions of their own by their parents' choice, and their
parents stop them on SIGTERM, which is why stop() tries SIGTERM first.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOG_TAIL = 6000  # characters of a log an error message quotes


def free_port() -> int:
    """A loopback port no one listens on right now (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pythonpath() -> str:
    """PYTHONPATH for a child: this checkout first, so that the child imports the code and the
    test support modules (identity providers, policies, hooks) the test itself sees."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def http_ready(url: str, *, any_status: bool = False) -> bool:
    """Whether `url` answers 2xx/3xx, or any HTTP status at all with `any_status` (a server
    that refuses the request is up)."""
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except urllib.error.HTTPError:
        return any_status
    except OSError:
        return False


def log_tail(log_path: Path) -> str:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return text if len(text) <= LOG_TAIL else "...\n" + text[-LOG_TAIL:]


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def wait_until(
    proc: subprocess.Popen, ready: Callable[[], bool], log_path: Path, timeout: float, interval: float = 0.1
) -> None:
    """Return once `ready()`; if `proc` exits first or `timeout` passes, raise with the end of
    its log, the process killed (a half-started server must not outlive the failed test)."""
    name = " ".join(map(str, proc.args[:3]))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log_tail(log_path)}")
        if ready():
            return
        time.sleep(interval)
    proc.kill()
    proc.wait(10)
    raise RuntimeError(f"{name} did not start within {timeout:.0f}s:\n{log_tail(log_path)}")


def wait_until_serving(proc: subprocess.Popen, url: str, log_path: Path, timeout: float) -> None:
    """wait_until `url` answers 2xx/3xx."""
    wait_until(proc, lambda: http_ready(url), log_path, timeout, interval=0.2)


_running: set[ManagedProcess] = set()


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_running):
        process.kill()


class ManagedProcess:
    """A child process with a log file; subclasses build its arguments and say when it is up."""

    stop_timeout = 20.0  # seconds SIGTERM gets before SIGKILL

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def launch(
        self,
        args: list[str],
        *,
        ready: Callable[[], bool],
        timeout: float,
        cwd: Path,
        env: dict[str, str] | None = None,
        interval: float = 0.1,
    ) -> None:
        """Start `args` with output appended to the log (a header marks each start, so that a
        restart's log reads in order), then wait_until `ready()`."""
        with open(self.log_path, "a") as log:  # the child keeps its own copy of the descriptor
            log.write(f"\n==== start {time.ctime()}\n")
            log.flush()
            self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        _running.add(self)
        wait_until(self.proc, ready, self.log_path, timeout, interval)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def terminate(self, timeout: float | None = None) -> float:
        """SIGTERM; returns how long the process took to exit (TimeoutExpired if it did not)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(self.stop_timeout if timeout is None else timeout)
        _running.discard(self)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no chance to clean up (a crash)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        _running.discard(self)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout` seconds."""
        if self.proc is not None:
            stop_process(self.proc, self.stop_timeout)
        _running.discard(self)

"""Scale-out scenario: what sharing a room through Redis costs (jupyter-collab only).

One writer types into a notebook at `rate` keystrokes per second; `readers` others watch.
First all on one process (the server the runner started: the single-process baseline),
then with the writer on process A and every reader on process B, A and B sharing the room
through a real `redis-server` (started here on a free loopback port, no persistence). The
metrics: delivery latency (keystroke to the reader's document), what was delivered, and
the CPU of the servers (and of Redis) for the same typing.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from array import array
from pathlib import Path

from .notebooks import write_notebooks
from .scenarios import Context, _client_ids, _connect_all, _failures, _settle, _sleep_until, _user_state
from .servers import Server, cpu_share, free_port, proc_sample, user_token
from .stats import summary_ms

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

# Parameters and table columns, registered with the runner beside the other scenarios'.
FULL = {"readers": [10, 50], "rate": 10, "duration": 8.0, "drain": 5.0, "cells": 20, "budget": 180}
QUICK = {**FULL, "readers": [5], "rate": 20, "duration": 1.0, "drain": 1.0, "settle": 0.2, "lead": 0.2}
COLUMNS = [
    ("p50", "p50", "ms", False),
    ("p99", "p99", "ms", False),
    ("delivered", "delivered", "", True),
    ("server_cpu", "servers CPU", "core", False),
    ("redis_cpu", "Redis CPU", "core", False),
]


class ClusterServer(Server):
    """One process of a scale-out pair: its own directories, the pair's root and file ids."""

    def __init__(self, base: Path, root: Path, python: str, redis_url: str) -> None:
        config = {
            "CollabApp": {"backplane_url": redis_url},
            "BaseFileIdManager": {"db_path": str(root.parent / "file_id.db")},
        }
        super().__init__("ours", base, python, config)
        self.root = root


def _start_redis(base: Path) -> tuple[subprocess.Popen, int]:
    import redis  # the benchmark needs the redis extra only for this scenario

    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(base)]
    proc = subprocess.Popen([*args, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def scaleout(ctx: Context, server: Server) -> list[dict]:
    if server.impl != "ours":
        return []  # the reference has no scale-out
    if not Path(REDIS_SERVER).exists():
        ctx.notes.append("scaleout: skipped, redis-server is not installed")
        return []
    cases = [_measure(ctx, [server], readers, "one process") for readers in ctx.params["readers"]]
    base = server.base.parent / "scaleout"
    shutil.rmtree(base, ignore_errors=True)
    redis_proc, port = _start_redis(base / "redis")
    root = base / "root"
    root.mkdir(parents=True)
    pair = [ClusterServer(base / n, root, server.python, f"redis://127.0.0.1:{port}/0") for n in "ab"]
    try:
        for process in pair:
            process.launch()
        for process in pair:
            process.wait_ready()
        for readers in ctx.params["readers"]:
            cases.append(_measure(ctx, pair, readers, "two processes via Redis", redis_proc.pid))
    finally:
        for process in pair:
            process.stop()
        redis_proc.kill()
        redis_proc.wait(10)
    return cases


def _measure(ctx: Context, servers: list[Server], readers: int, setup: str, redis_pid: int = 0) -> dict:
    """The writer joins `servers[0]`, the readers `servers[-1]`; returns one case."""
    p = ctx.params
    label = f"scaleout {setup} {readers}"
    path = write_notebooks(servers[0].root, p["cells"], 1, label.replace(" ", "-"))[0]
    urls = [ctx.pool.call(0, "session", base_url=s.url, path=path) for s in (servers[0], servers[-1])]
    ids = _client_ids(readers + 1, random.SystemRandom())
    specs = [
        {"name": f"c{i}", "url": urls[min(i, 1)], "client_id": ids[i], "awareness": _user_state(i)}
        | {"token": user_token(i)}
        for i in range(readers + 1)
    ]
    # Specs go round robin over the workers: the writer, c0, is on worker 0.
    failed = _failures(_connect_all(ctx, specs, concurrency=8, timeout=60))
    _settle(p.get("settle", 1.0))
    start_at = time.monotonic() + p.get("lead", 0.5)
    for i in range(ctx.pool.size):
        writers = {"c0": {"cell": 1, "offset": 0.0}} if i == 0 else {}
        run = {"start_at": start_at, "duration": p["duration"], "rate": p["rate"], "tracked": [ids[0]]}
        ctx.pool.send(i, "fanout_run", writers=writers, **run)
    pids = [s.pid for s in servers] + ([redis_pid] if redis_pid else [])
    _sleep_until(start_at)
    before = [proc_sample(pid) for pid in pids]
    _sleep_until(start_at + p["duration"])
    cpu = [cpu_share(a, proc_sample(pid)) for a, pid in zip(before, pids, strict=True)]
    sends: dict[int, bytes] = {}
    for i in range(ctx.pool.size):
        sends.update(ctx.pool.recv(i, p["duration"] + 60)["sends"])
    finals = {w: len(array("d", raw)) for w, raw in sends.items()}
    ctx.pool.each("fanout_drain", finals=finals, timeout=p["drain"])
    analyses = ctx.pool.each("fanout_analyze", sends_raw=sends)
    ctx.pool.each("close")
    latencies = array("d")
    for analysis in analyses:
        latencies.frombytes(analysis["latencies"])
    expected = sum(a["expected"] for a in analyses)
    metrics = {
        **summary_ms(latencies),
        "delivered": round(sum(a["delivered"] for a in analyses) / expected, 4) if expected else None,
        "server_cpu": round(sum(cpu[: len(servers)]), 3),
        "redis_cpu": round(cpu[-1], 3) if redis_pid else 0.0,
        "connect_failures": len(failed),
    }
    ctx.log(
        f"  scaleout {setup}, {readers} readers: p50 {metrics['p50']} p99 {metrics['p99']} ms,"
        f" delivered {metrics['delivered']}, servers CPU {metrics['server_cpu']:.0%}"
    )
    _settle(p.get("settle", 1.0))
    return {"case": {"setup": setup, "readers": readers}, "metrics": metrics}

"""The scenarios, run by the coordinator against one server at a time.

Each function takes a `Context` (the worker pool, parameters, a deadline) and a started
`Server`, and returns a list of cases: `{"case": {...parameters}, "metrics": {...}}`.
Every wait is bounded; a scenario that runs out of its time budget stops early and says so.
"""

from __future__ import annotations

import json
import math
import random
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from .notebooks import last_source, write_notebooks
from .pool import Pool
from .servers import Server, cpu_share, user_token
from .stats import MachineCpu, median, summary_ms

MB = 1024 * 1024


@dataclass
class Context:
    pool: Pool
    params: dict[str, Any]
    log: Any
    deadline: float = math.inf
    notes: list[str] = field(default_factory=list)

    def time_left(self) -> float:
        return self.deadline - time.monotonic()


def _user(i: int) -> dict[str, Any]:
    return {
        "username": f"user{i}",
        "name": f"User {i}",
        "display_name": f"User {i}",
        "initials": f"U{i % 100}",
        "color": f"var(--jp-collaborator-color{i % 7 + 1})",
        "avatar_url": None,
    }


def _user_state(i: int) -> str:
    return json.dumps({"user": _user(i), "current": "notebook:bench.ipynb"}, separators=(",", ":"))


def _cursor_template(i: int, client_id: int) -> str:
    """A JupyterLab-like awareness state with a cursor (relative positions); @POS@ moves."""
    pos = {
        "type": {"client": client_id, "clock": 7},
        "tname": None,
        "item": {"client": client_id, "clock": 999999},
        "assoc": 0,
    }
    state = {
        "user": _user(i),
        "current": "notebook:bench.ipynb",
        "cursors": [{"primary": True, "empty": True, "head": pos, "anchor": pos}],
    }
    return json.dumps(state, separators=(",", ":")).replace("999999", "@POS@")


def _client_ids(n: int, rng: random.Random) -> list[int]:
    """Fresh Yjs client ids: a reused id would collide with history the server kept."""
    ids: set[int] = set()
    while len(ids) < n:
        ids.add(rng.randrange(1, 2**31))
    return list(ids)


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


def _connect_all(
    ctx: Context, specs: list[dict], concurrency: int, timeout: float, budget: float | None = None
) -> dict[str, Any]:
    """Spread `specs` over the workers (round robin) and connect them; returns results by name.
    `timeout` bounds each client, `budget` (default: `timeout`) the whole operation."""
    budget = timeout if budget is None else budget
    per = _split(specs, ctx.pool.size)
    replies = ctx.pool.each(
        "connect",
        [{"specs": s} for s in per],
        reply_timeout=budget + timeout + 60,
        concurrency=concurrency,
        timeout=timeout,
        budget=budget,
    )
    merged: dict[str, Any] = {}
    for reply in replies:
        merged.update(reply)
    return merged


def _failures(results: dict[str, Any]) -> list[str]:
    return [f"{name}: {r['error']}" for name, r in results.items() if not r["ok"]]


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _settle(seconds: float) -> None:
    time.sleep(seconds)


# -- join -----------------------------------------------------------------------------------


def join(ctx: Context, server: Server) -> list[dict]:
    p = ctx.params
    cases = []
    # Warm up once (first room of a process imports and initializes lazily loaded code).
    warmup = write_notebooks(server.root, 5, 1, "warmup-join")[0]
    ctx.pool.call(
        0,
        "join",
        base_url=server.url,
        path=warmup,
        cells=5,
        last_source=last_source(5),
        name="warmup",
        keep=False,
    )
    for cells in p["sizes"]:
        if ctx.time_left() < 10:
            ctx.notes.append(f"join: out of time before {cells} cells")
            break
        paths = write_notebooks(server.root, cells, p["cold"], f"join-{server.impl}")
        src = last_source(cells)
        _settle(p.get("settle", 1.0) / 2)
        before = server.sample()
        cold = []
        errors = []
        for rep, path in enumerate(paths):
            r = ctx.pool.call(
                0,
                "join",
                base_url=server.url,
                path=path,
                cells=cells,
                last_source=src,
                name=f"cold-{cells}-{rep}",
                keep=rep == 0,
                timeout=min(120.0, ctx.time_left()),
            )
            (cold if r["ok"] else errors).append(r)
        _settle(p.get("settle", 1.0))
        after = server.sample()
        warm = []
        for rep in range(p["warm"]):
            r = ctx.pool.call(
                0,
                "join",
                base_url=server.url,
                path=paths[0],
                cells=cells,
                last_source=src,
                name=f"warm-{cells}-{rep}",
                keep=False,
                timeout=min(120.0, ctx.time_left()),
                token=user_token(rep + 1),
            )
            (warm if r["ok"] else errors).append(r)
        ctx.pool.call(0, "close", names=[f"cold-{cells}-0"])
        metrics = {
            "cold_ms": _ms(median([r["total"] for r in cold])),
            "cold_session_ms": _ms(median([r["session"] for r in cold])),
            "cold_socket_ms": _ms(median([r["socket"] for r in cold])),
            "cold_runs_ms": [_ms(r["total"]) for r in cold],
            "warm_ms": _ms(median([r["total"] for r in warm])),
            "warm_runs_ms": [_ms(r["total"]) for r in warm],
            "rss_mb": round(after.rss / MB, 1),
            "room_mb": round((after.rss - before.rss) / MB / max(len(cold), 1), 2),
            "errors": [r["error"] for r in errors][:3],
        }
        ctx.log(
            f"  join {cells:>5} cells: cold {metrics['cold_ms']} ms, warm {metrics['warm_ms']} ms, "
            f"RSS {metrics['rss_mb']} MB (+{metrics['room_mb']} MB/room)"
        )
        cases.append({"case": {"cells": cells}, "metrics": metrics})
    return cases


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


# -- fan-out --------------------------------------------------------------------------------


def _room_with_clients(
    ctx: Context, server: Server, p: dict, rng: Any, n_clients: int, label: str
) -> tuple[list[int], dict[str, Any], list[str]]:
    """A fresh notebook with `n_clients` connected users (failures noted): their client ids,
    the connection results and the failures."""
    path = write_notebooks(server.root, p["cells"], 1, label.replace(" ", "-").replace("/", "-"))[0]
    url = ctx.pool.call(0, "session", base_url=server.url, path=path)
    ids = _client_ids(n_clients, rng)
    specs = [
        {
            "name": f"c{i}",
            "url": url,
            "client_id": ids[i],
            "awareness": _user_state(i),
            "token": user_token(i),
        }
        for i in range(n_clients)
    ]
    results = _connect_all(ctx, specs, concurrency=8, timeout=60)
    failed = _failures(results)
    if failed:
        ctx.notes.append(f"{label}: {len(failed)} clients failed to connect: {failed[0]}")
    _settle(p.get("settle", 1.0))
    return ids, results, failed


def fanout(ctx: Context, server: Server) -> list[dict]:
    p = ctx.params
    rng = random.SystemRandom()
    cases = []
    for n_clients, n_writers in p["cases"]:
        need = p["duration"] + p["drain"] + 10
        if ctx.time_left() < need:
            ctx.notes.append(f"fanout: out of time before {n_clients} clients / {n_writers} writers")
            break
        n_writers = min(n_writers, n_clients)
        ids, results, failed = _room_with_clients(
            ctx, server, p, rng, n_clients, f"fanout {n_clients}/{n_writers}"
        )
        period = 1.0 / p["rate"]
        # client i lives on worker i % size; writers are clients 0..W-1, staggered over a period
        writers_per_worker: list[dict[str, dict]] = [{} for _ in range(ctx.pool.size)]
        for w in range(n_writers):
            writers_per_worker[w % ctx.pool.size][f"c{w}"] = {"cell": w + 1, "offset": w * period / n_writers}
        tracked = ids[:n_writers]
        start_at = time.monotonic() + p.get("lead", 0.5)
        for i in range(ctx.pool.size):
            ctx.pool.send(
                i,
                "fanout_run",
                start_at=start_at,
                duration=p["duration"],
                rate=p["rate"],
                writers=writers_per_worker[i],
                tracked=tracked,
            )
        _sleep_until(start_at)
        s0, g0, m0 = server.sample(), ctx.pool.cpu(), MachineCpu()
        _sleep_until(start_at + p["duration"])
        s1, g1 = server.sample(), ctx.pool.cpu()
        machine = m0.cores_used()
        runs = [ctx.pool.recv(i, p["duration"] + 60) for i in range(ctx.pool.size)]
        sends: dict[int, bytes] = {}
        for r in runs:
            sends.update(r["sends"])
        finals = {w: len(array("d", raw)) for w, raw in sends.items()}
        t_drain = time.monotonic()
        ctx.pool.each("fanout_drain", finals=finals, timeout=p["drain"])
        drain_s = time.monotonic() - t_drain
        counts = ctx.pool.each("counts")
        analyses = ctx.pool.each("fanout_analyze", sends_raw=sends, with_times=bool(p.get("timeline")))
        ctx.pool.each("close")
        latencies = array("d")
        expected = delivered = frames = not_integrated = 0
        for a in analyses:
            not_integrated += a["not_integrated"]
            latencies.frombytes(a["latencies"])
            expected += a["expected"]
            delivered += a["delivered"]
            frames += a["frames"]
        server_cpu = cpu_share(s0, s1)
        gen_cpu = sum(cpu_share(a, b) for a, b in zip(g0, g1, strict=True))
        metrics = {
            **summary_ms(latencies),
            "delivered": round(delivered / expected, 4) if expected else None,
            "updates": sum(finals.values()),
            "server_cpu": round(server_cpu, 3),
            "generator_cpu": round(gen_cpu, 3),
            "machine_cpu": round(machine, 2),
            "other_cpu": round(max(0.0, machine - server_cpu - gen_cpu), 2),
            "drain_s": round(drain_s, 2),
            "writer_lag_max_ms": round(max(r["lags"]["max"] for r in runs) * 1000, 1),
            "frames_received": frames,
            "connect_failures": len(failed),
            "closed_by_server": _closed(counts),
        }
        if p.get("timeline"):
            # when the slow deliveries happened: seconds into the run -> pairs over 30 ms
            slow: dict[float, int] = {}
            for a in analyses:
                for sent, lat in zip(array("d", a["sent_at"]), array("d", a["latencies"]), strict=True):
                    if lat > 0.03:
                        key = round(sent - start_at, 1)
                        slow[key] = slow.get(key, 0) + 1
            metrics["slow_timeline"] = dict(sorted(slow.items()))
        if not_integrated:
            ctx.notes.append(
                f"fanout {n_clients}/{n_writers}: {not_integrated} keystrokes reported but not integrated"
            )
        ctx.log(
            f"  fanout {n_clients:>3} clients {n_writers:>2} writers:"
            f" p50 {metrics['p50']} p99 {metrics['p99']} ms,"
            f" delivered {metrics['delivered']}, server CPU {server_cpu:.0%}, generator CPU {gen_cpu:.0%}"
        )
        cases.append({"case": {"clients": n_clients, "writers": n_writers}, "metrics": metrics})
        _settle(p.get("settle", 1.0))
    return cases


def _closed(counts: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for code, n in c["closed_codes"].items():
            out[code] = out.get(code, 0) + n
    return out


# -- presence -------------------------------------------------------------------------------


def presence(ctx: Context, server: Server) -> list[dict]:
    p = ctx.params
    rng = random.SystemRandom()
    cases = []
    for n_clients in p["clients"]:
        if ctx.time_left() < p["duration"] + p["drain"] + 10:
            ctx.notes.append(f"presence: out of time before {n_clients} clients")
            break
        ids, results, failed = _room_with_clients(ctx, server, p, rng, n_clients, f"presence {n_clients}")
        period = 1.0 / p["rate"]
        offsets: list[dict[str, float]] = [{} for _ in range(ctx.pool.size)]
        for i in range(n_clients):
            if f"c{i}" in results and results[f"c{i}"]["ok"]:
                offsets[i % ctx.pool.size][f"c{i}"] = i * period / n_clients
        templates = {}
        start_at = time.monotonic() + p.get("lead", 0.5)
        for i in range(ctx.pool.size):
            # one template per worker is enough: the state's size is what matters
            templates[i] = _cursor_template(i, ids[i % len(ids)])
            ctx.pool.send(
                i,
                "presence_run",
                start_at=start_at,
                duration=p["duration"],
                rate=p["rate"],
                offsets=offsets[i],
                state_template=templates[i],
            )
        _sleep_until(start_at)
        s0, g0, m0 = server.sample(), ctx.pool.cpu(), MachineCpu()
        _sleep_until(start_at + p["duration"])
        s1, g1 = server.sample(), ctx.pool.cpu()
        machine = m0.cores_used()
        runs = [ctx.pool.recv(i, p["duration"] + 60) for i in range(ctx.pool.size)]
        sends: dict[int, tuple[int, bytes]] = {}
        for r in runs:
            sends.update(r["sends"])
        finals = {cid: first + len(array("d", raw)) - 1 for cid, (first, raw) in sends.items()}
        t_drain = time.monotonic()
        ctx.pool.each("presence_drain", finals=finals, timeout=p["drain"])
        drain_s = time.monotonic() - t_drain
        counts = ctx.pool.each("counts")
        analyses = ctx.pool.each("presence_analyze", sends_raw=sends)
        ctx.pool.each("close")
        worst: dict[int, array] = {}
        pairs = array("f")
        expected = delivered = exact = frames = 0
        for a in analyses:
            for sender, raw in a["worst"].items():
                values = array("d", raw)
                if sender in worst:
                    worst[sender] = array("d", map(max, worst[sender], values))
                else:
                    worst[sender] = values
            pairs.frombytes(a["pairs"])
            expected += a["expected"]
            delivered += a["delivered"]
            exact += a["exact"]
            frames += a["frames"]
        server_cpu = cpu_share(s0, s1)
        gen_cpu = sum(cpu_share(a, b) for a, b in zip(g0, g1, strict=True))
        all_seen = [v for values in worst.values() for v in values]
        seen_by_all = sum(1 for v in all_seen if math.isfinite(v))
        everyone = summary_ms(all_seen)
        per_pair = summary_ms(pairs)
        positions = len(all_seen)
        metrics = {
            **everyone,
            "pair_p50": per_pair["p50"],
            "pair_p99": per_pair["p99"],
            "delivered": round(delivered / expected, 4) if expected else None,
            "seen_by_all": round(seen_by_all / positions, 4) if positions else None,
            "exact_delivered": round(exact / expected, 4) if expected else None,
            "positions": positions,
            "server_cpu": round(server_cpu, 3),
            "generator_cpu": round(gen_cpu, 3),
            "machine_cpu": round(machine, 2),
            "other_cpu": round(max(0.0, machine - server_cpu - gen_cpu), 2),
            "drain_s": round(drain_s, 2),
            "sender_lag_max_ms": round(max(r["lags"]["max"] for r in runs) * 1000, 1),
            "frames_received": frames,
            "connect_failures": len(failed),
            "closed_by_server": _closed(counts),
        }
        ctx.log(
            f"  presence {n_clients:>3} clients: all-seen p50 {metrics['p50']} p99 {metrics['p99']} ms,"
            f" latest delivered {metrics['delivered']}, every position {metrics['exact_delivered']},"
            f" server CPU {metrics['server_cpu']:.0%}, generator CPU {metrics['generator_cpu']:.0%}"
        )
        cases.append({"case": {"clients": n_clients}, "metrics": metrics})
        _settle(p.get("settle", 1.0))
    return cases


# -- rooms ----------------------------------------------------------------------------------


def rooms(ctx: Context, server: Server) -> list[dict]:
    p = ctx.params
    cells = p["cells"]
    total = max(p["steps"])
    paths = write_notebooks(server.root, cells, total + 1, "room")
    warm, paths = paths[0], paths[1:]
    r = ctx.pool.call(
        0, "connect", specs=[{"name": "room-warmup", "base_url": server.url, "path": warm, "keep_doc": False}]
    )
    if not r["room-warmup"]["ok"]:
        raise RuntimeError(f"rooms: warm-up failed: {r['room-warmup']['error']}")
    _settle(p["settle"])
    base = server.sample()
    cases = []
    opened = 0
    for step in p["steps"]:
        new = paths[opened:step]
        budget = ctx.time_left() - p["idle"] - p["settle"] - 5
        if budget < 5:
            ctx.notes.append(f"rooms: out of time before {step} rooms")
            break
        t0 = time.monotonic()
        # time to open: a sample opened one at a time; the rest opened concurrently
        sample = new[: p["sample_open"]]
        rest = new[p["sample_open"] :]
        specs = [
            {
                "name": f"room-{opened + i}",
                "base_url": server.url,
                "path": path,
                "keep_doc": False,
                "token": user_token(opened + i),
            }
            for i, path in enumerate(sample)
        ]
        sampled = ctx.pool.call(0, "connect", specs=specs, concurrency=1, timeout=60.0, budget=budget)
        specs = [
            {
                "name": f"room-{opened + len(sample) + i}",
                "base_url": server.url,
                "path": path,
                "keep_doc": False,
                "token": user_token(opened + len(sample) + i),
            }
            for i, path in enumerate(rest)
        ]
        bulk = (
            _connect_all(ctx, specs, concurrency=p["concurrency"], timeout=60.0, budget=budget)
            if specs
            else {}
        )
        open_s = time.monotonic() - t0
        results = {**sampled, **bulk}
        failed = _failures(results)
        opened_ok = sum(1 for r in results.values() if r["ok"])
        opened += len(new)
        _settle(p["settle"])
        s0, m0 = server.sample(), MachineCpu()
        _settle(p["idle"])
        s1, other = server.sample(), m0.cores_used()
        n_open = opened - len(failed)
        metrics = {
            "rooms_open": n_open,
            "room_kb": round((s1.rss - base.rss) / 1024 / max(n_open, 1), 1),
            "rss_mb": round(s1.rss / MB, 1),
            "idle_cpu": round(cpu_share(s0, s1), 4),
            "other_cpu": round(max(0.0, other - cpu_share(s0, s1)), 2),
            "open_ms": _ms(median([r["total"] for r in sampled.values() if r["ok"]])),
            "open_all_s": round(open_s, 2),
            "opened_per_s": round(opened_ok / open_s, 1) if open_s > 0 else None,
            "failures": len(failed),
        }
        if failed:
            ctx.notes.append(f"rooms {step}: {len(failed)} failed: {failed[0]}")
        ctx.log(
            f"  rooms {step:>5}: {metrics['room_kb']} KB/room, idle CPU {metrics['idle_cpu']:.1%},"
            f" open {metrics['open_ms']} ms ({metrics['opened_per_s']}/s)"
        )
        cases.append({"case": {"rooms": step, "cells": cells}, "metrics": metrics})
    ctx.pool.each("close", grace=1.0)
    return cases


# -- connections ------------------------------------------------------------------------------


def connections(ctx: Context, server: Server) -> list[dict]:
    p = ctx.params
    path = write_notebooks(server.root, p["cells"], 1, "connections")[0]
    url = ctx.pool.call(0, "session", base_url=server.url, path=path)
    r = ctx.pool.call(0, "connect", specs=[{"name": "conn-warmup", "url": url, "keep_doc": False}])
    if not r["conn-warmup"]["ok"]:
        raise RuntimeError(f"connections: warm-up failed: {r['conn-warmup']['error']}")
    _settle(p["settle"])
    base = server.sample()
    cases = []
    held = 0
    for step in p["steps"]:
        budget = ctx.time_left() - p["settle"] - p["idle"] - 5
        if budget < 5:
            ctx.notes.append(f"connections: out of time before {step}")
            break
        specs = [
            {"name": f"idle-{i}", "url": url, "keep_doc": False, "token": user_token(i)}
            for i in range(held, step)
        ]
        t0 = time.monotonic()
        results = _connect_all(
            ctx, specs, concurrency=p["concurrency"], timeout=60.0, budget=min(budget, p["step_timeout"])
        )
        connect_s = time.monotonic() - t0
        failed = _failures(results)
        held = step
        _settle(p["settle"])
        counts = ctx.pool.each("counts")
        live = sum(c["open"] for c in counts) - 1  # minus the warm-up client
        s0, m0 = server.sample(), MachineCpu()
        _settle(p["idle"])
        s1, other = server.sample(), m0.cores_used()
        metrics = {
            "connections": live,
            "conn_kb": round((s1.rss - base.rss) / 1024 / max(live, 1), 1),
            "rss_mb": round(s1.rss / MB, 1),
            "idle_cpu": round(cpu_share(s0, s1), 4),
            "other_cpu": round(max(0.0, other - cpu_share(s0, s1)), 2),
            "connect_s": round(connect_s, 2),
            "connects_per_s": round(len(specs) / connect_s, 1) if connect_s > 0 else None,
            "failures": len(failed),
            "closed_by_server": _closed(counts),
        }
        if failed:
            ctx.notes.append(f"connections {step}: {len(failed)} failed: {failed[0]}")
        ctx.log(
            f"  connections {step:>6}: {live} open, {metrics['conn_kb']} KB each, RSS {metrics['rss_mb']} MB,"
            f" {metrics['connects_per_s']} connects/s"
        )
        cases.append({"case": {"connections": step}, "metrics": metrics})
        if live < step * 0.9:
            ctx.notes.append(f"connections: stopped at {live} of {step}")
            break
    ctx.pool.each("close", grace=1.0, reply_timeout=120)
    return cases


SCENARIOS = {
    "join": join,
    "fanout": fanout,
    "presence": presence,
    "rooms": rooms,
    "connections": connections,
}

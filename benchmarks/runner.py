"""`python -m benchmarks`: run the scenarios against jupyter-collab and the reference
(jupyter-collaboration 5.0.4), print a table and one JSON line per scenario."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from . import scaleout, scenarios
from .pool import Pool
from .servers import (
    REFERENCE_VENV,
    Server,
    build_reference,
    package_versions,
    raise_nofile,
    reference_python,
    reference_ready,
)
from .stats import MachineCpu

ORDER = ["join", "fanout", "presence", "rooms", "connections", "scaleout"]
SCENARIOS = {**scenarios.SCENARIOS, "scaleout": scaleout.scaleout}

FULL: dict[str, dict[str, Any]] = {
    "join": {"sizes": [10, 200, 2000], "cold": 3, "warm": 5, "budget": 150},
    "fanout": {
        "cases": [(2, 1), (2, 10), (10, 1), (10, 10), (50, 1), (50, 10), (100, 1), (100, 10)],
        "rate": 10,
        "duration": 8.0,
        "drain": 5.0,
        "cells": 20,
        "budget": 240,
    },
    "presence": {
        "clients": [10, 50, 100],
        "rate": 20,
        "duration": 8.0,
        "drain": 5.0,
        "cells": 20,
        "budget": 120,
    },
    "rooms": {
        "steps": [10, 100, 500, 2000],
        "cells": 50,
        "idle": 8.0,
        "settle": 3.0,
        "sample_open": 10,
        "concurrency": 4,
        "budget": 200,
    },
    "connections": {
        "steps": [100, 1000, 5000, 10000],
        "cells": 10,
        "idle": 3.0,
        "settle": 3.0,
        "concurrency": 32,
        "step_timeout": 90.0,
        "budget": 200,
    },
    "scaleout": scaleout.FULL,
}

QUICK: dict[str, dict[str, Any]] = {
    "join": {"sizes": [50], "cold": 1, "warm": 1, "settle": 0.2, "budget": 15},
    "fanout": {
        "cases": [(10, 10)],
        "rate": 10,
        "duration": 1.0,
        "drain": 1.0,
        "cells": 12,
        "settle": 0.2,
        "lead": 0.2,
        "budget": 15,
    },
    "presence": {
        "clients": [10],
        "rate": 20,
        "duration": 1.0,
        "drain": 1.0,
        "cells": 5,
        "settle": 0.2,
        "lead": 0.2,
        "budget": 15,
    },
    "rooms": {
        "steps": [10],
        "cells": 50,
        "idle": 0.5,
        "settle": 0.3,
        "sample_open": 5,
        "concurrency": 4,
        "budget": 15,
    },
    "connections": {
        "steps": [50],
        "cells": 10,
        "idle": 0.5,
        "settle": 0.3,
        "concurrency": 16,
        "step_timeout": 10.0,
        "budget": 15,
    },
    "scaleout": scaleout.QUICK,
}

# What the table shows per scenario: (metric key, label, unit, higher is better)
COLUMNS = {
    "join": [
        ("cold_ms", "cold join", "ms", False),
        ("warm_ms", "warm join", "ms", False),
        ("room_mb", "memory per room", "MB", False),
        ("rss_mb", "server RSS", "MB", False),
    ],
    "fanout": [
        ("p50", "p50", "ms", False),
        ("p95", "p95", "ms", False),
        ("p99", "p99", "ms", False),
        ("delivered", "delivered", "", True),
        ("server_cpu", "server CPU", "core", False),
        ("generator_cpu", "generator CPU", "core", False),
    ],
    "presence": [
        ("p50", "all-seen p50", "ms", False),
        ("p99", "all-seen p99", "ms", False),
        ("delivered", "latest delivered", "", True),
        ("exact_delivered", "every position", "", True),
        ("server_cpu", "server CPU", "core", False),
        ("generator_cpu", "generator CPU", "core", False),
    ],
    "rooms": [
        ("room_kb", "memory per room", "KB", False),
        ("idle_cpu", "idle CPU", "core", False),
        ("open_ms", "time to open", "ms", False),
        ("rooms_open", "rooms open", "", True),
    ],
    "connections": [
        ("conn_kb", "memory per connection", "KB", False),
        ("connections", "held", "", True),
        ("connects_per_s", "connects/s", "", True),
    ],
    "scaleout": scaleout.COLUMNS,
}


def checkout_info() -> dict[str, Any]:
    """The commit measured (read-only git queries) and whether the tree had local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "jupyter_collab"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "package_modified": bool(dirty)}


def machine_info() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg": os.getloadavg(),
    }


def case_label(case: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in case.items())


def ratio(ours: Any, theirs: Any) -> float | None:
    if not isinstance(ours, int | float) or not isinstance(theirs, int | float) or theirs == 0:
        return None
    return round(ours / theirs, 3)


def combine(name: str, results: dict[str, list[dict]]) -> list[dict]:
    """Merge per-implementation cases into rows {case, ours, reference, ratio}."""
    rows: dict[str, dict] = {}
    for impl, cases in results.items():
        for c in cases:
            key = json.dumps(c["case"], sort_keys=True)
            row = rows.setdefault(key, {"case": c["case"]})
            row[impl] = c["metrics"]
    out = []
    for row in rows.values():
        if "ours" in row and "reference" in row:
            row["ratio"] = {
                k: ratio(v, row["reference"].get(k))
                for k, v in row["ours"].items()
                if ratio(v, row["reference"].get(k)) is not None
            }
        out.append(row)
    return out


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "core" and isinstance(value, int | float):
        return f"{value * 100:.1f}%"
    if unit == "" and isinstance(value, float) and value <= 1.0:
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(lines: list[dict]) -> str:
    rows = [("scenario", "case", "metric", "ours", "reference", "ours/ref")]
    for line in lines:
        name = line["scenario"]
        for row in line["cases"]:
            for key, label, unit, _ in COLUMNS[name]:
                ours = row.get("ours", {}).get(key)
                theirs = row.get("reference", {}).get(key)
                r = ratio(ours, theirs)
                label_u = f"{label} ({unit})" if unit and unit != "core" else label
                rows.append(
                    (
                        name,
                        case_label(row["case"]),
                        label_u,
                        fmt(ours, unit),
                        fmt(theirs, unit),
                        "-" if r is None else f"{r:.2f}",
                    )
                )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for i, r in enumerate(rows):
        out.append(
            "  ".join(cell.ljust(widths[j]) if j < 3 else cell.rjust(widths[j]) for j, cell in enumerate(r))
        )
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI smoke run: tiny sizes, seconds per scenario")
    parser.add_argument("--only", default="", help=f"comma-separated scenarios ({', '.join(ORDER)})")
    parser.add_argument(
        "--json", metavar="FILE", help="also write the JSON lines (and a header line) to FILE"
    )
    parser.add_argument("--workers", type=int, default=3, help="load generator processes (default 3)")
    parser.add_argument(
        "--impl",
        choices=["both", "ours", "reference"],
        default="both",
        help="which implementations to run (default both)",
    )
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="do not build the reference virtualenv; skip the reference if it is missing",
    )
    parser.add_argument("--workdir", help="where servers keep their files (default: a temporary directory)")
    parser.add_argument("--plots", metavar="DIR", help="write latency plots (PNG, needs matplotlib) to DIR")
    args = parser.parse_args(argv)

    only = [s.strip() for s in args.only.split(",") if s.strip()] or ORDER
    unknown = [s for s in only if s not in ORDER]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    params = QUICK if args.quick else FULL
    started = time.monotonic()
    log = _logger(started)
    notes: list[str] = []
    raise_nofile()

    impls = ["ours", "reference"] if args.impl == "both" else [args.impl]
    if "reference" in impls and not reference_ready():
        if args.quick or args.no_build:
            notes.append(f"reference skipped: {REFERENCE_VENV} is missing (run without --quick to build it)")
            log(notes[-1])
            impls.remove("reference")
        else:
            build_reference(log)
    pythons = {"ours": sys.executable, "reference": str(reference_python())}
    versions = {
        impl: package_versions(
            pythons[impl],
            [
                "jupyter-collab",
                "jupyter-collaboration",
                "jupyter-server-ydoc",
                "pycrdt",
                "pycrdt-websocket",
                "jupyter-server",
                "tornado",
                "jupyter-ydoc",
            ],
        )
        for impl in impls
    }
    header = {
        "scenario": "meta",
        "mode": "quick" if args.quick else "full",
        "machine": machine_info(),
        "versions": versions,
        "checkout": checkout_info(),
        "workers": args.workers,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    log(f"machine: {header['machine']}")
    for impl in impls:
        log(f"{impl}: {versions[impl]}")

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="collab-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    json_file = open(args.json, "w") if args.json else None  # noqa: SIM115
    if json_file:
        json_file.write(json.dumps(header) + "\n")
        json_file.flush()
    shared: dict[str, Server] = {}
    if args.quick:
        # one server per implementation for the whole smoke run, started alongside the workers
        shared = {impl: Server(impl, workdir / impl, pythons[impl]).launch() for impl in impls}
    pool = Pool(args.workers)
    lines: list[dict] = []
    machine = MachineCpu()
    try:
        for server in shared.values():
            server.wait_ready()
        for name in only:
            per_impl: dict[str, list[dict]] = {}
            scenario_notes: list[str] = []
            for impl in impls:
                log(f"{name}: {impl}")
                if args.quick:
                    server = shared[impl]
                else:
                    server = Server(impl, workdir / f"{name}-{impl}", pythons[impl]).start()
                ctx = scenarios.Context(
                    pool, params[name], log, deadline=time.monotonic() + params[name]["budget"]
                )
                try:
                    per_impl[impl] = SCENARIOS[name](ctx, server)
                except Exception as exc:  # noqa: BLE001 - report and go on with the next one
                    log(traceback.format_exc())
                    scenario_notes.append(f"{impl}: {name} failed: {type(exc).__name__}: {exc}"[:500])
                    per_impl.setdefault(impl, [])
                    try:
                        pool.each("close", reply_timeout=60)
                    except Exception:  # noqa: BLE001
                        pass
                finally:
                    if not args.quick:
                        server.stop()
                scenario_notes += [f"{impl}: {n}" for n in ctx.notes]
            line = {
                "scenario": name,
                "cases": combine(name, per_impl),
                "notes": scenario_notes,
                "params": {k: v for k, v in params[name].items()},
            }
            lines.append(line)
            print(json.dumps(line), flush=True)
            if json_file:
                json_file.write(json.dumps(line) + "\n")
                json_file.flush()
    finally:
        for server in shared.values():
            server.stop()
        pool.close()
        if json_file:
            json_file.close()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(table(lines))
    all_notes = notes + [f"{line['scenario']}: {n}" for line in lines for n in line["notes"]]
    if all_notes:
        print("\nnotes:")
        for n in all_notes:
            print(f"  - {n}")
    elapsed = time.monotonic() - started
    print(
        f"\n{len(lines)} scenarios in {elapsed:.0f} s; "
        f"machine busy {machine.cores_used():.2f} cores on average "
        f"(of {header['machine']['nproc']}); load average at start {header['machine']['loadavg'][0]:.2f}"
    )
    if args.plots:
        from .plots import plot_all

        for path in plot_all([header, *lines], Path(args.plots)):
            print(f"plot: {path}")
    return 0


def _logger(started: float):
    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    return log

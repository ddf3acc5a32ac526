"""Plots of a run (PNG, matplotlib): latency against clients, ours and the reference.

python -m benchmarks.plots results.jsonl docs/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLORS = {"ours": "#1f77b4", "reference": "#d62728"}
LABELS = {"ours": "jupyter-collab", "reference": "jupyter-collaboration 5.0.4"}


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _series(line: dict, impl: str, x_key: str, y_key: str, where: dict[str, Any]) -> tuple[list, list]:
    xs, ys = [], []
    for row in line["cases"]:
        if any(row["case"].get(k) != v for k, v in where.items()):
            continue
        metrics = row.get(impl)
        if not metrics or metrics.get(y_key) is None:
            continue
        xs.append(row["case"][x_key])
        ys.append(metrics[y_key])
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    return [xs[i] for i in order], [ys[i] for i in order]


def _latency_plot(
    plt: Any,
    ticker: Any,
    line: dict,
    title: str,
    variants: list[tuple[str, dict]],
    out: Path,
    delivered_key: str,
    goal_ms: float | None = None,
) -> Path:
    fig, axes = plt.subplots(1, len(variants), figsize=(6 * len(variants), 4.2), squeeze=False)
    for ax, (subtitle, where) in zip(axes[0], variants, strict=True):
        for impl in ("ours", "reference"):
            for key, style in (("p50", "-"), ("p99", "--")):
                xs, ys = _series(line, impl, "clients", key, where)
                if xs:
                    ax.plot(xs, ys, style, marker="o", color=COLORS[impl], label=f"{LABELS[impl]} {key}")
            xs, shares = _series(line, impl, "clients", delivered_key, where)
            for x, share in zip(xs, shares, strict=True):
                if share is not None and share < 0.999:
                    ys_p99 = dict(zip(*_series(line, impl, "clients", "p99", where), strict=True))
                    y = ys_p99.get(x)
                    if y:
                        ax.annotate(
                            f"{share:.0%} delivered",
                            (x, y),
                            textcoords="offset points",
                            xytext=(4, 6),
                            fontsize=8,
                            color=COLORS[impl],
                        )
        if goal_ms is not None:
            ax.axhline(
                goal_ms, color="gray", linewidth=0.8, linestyle=":", label=f"goal: p99 < {goal_ms:g} ms"
            )
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("clients in the room")
        ax.set_ylabel("latency (ms, log scale)")
        ax.set_title(subtitle, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_all(lines: list[dict], outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    outdir.mkdir(parents=True, exist_ok=True)
    by_name = {line["scenario"]: line for line in lines}
    written = []
    if "fanout" in by_name:
        line = by_name["fanout"]
        writers = sorted({row["case"]["writers"] for row in line["cases"] if row["case"]["clients"] > 2})
        variants = [(f"{w} writer{'s' if w > 1 else ''} typing at 10 Hz", {"writers": w}) for w in writers]
        if variants:
            written.append(
                _latency_plot(
                    plt,
                    ticker,
                    line,
                    "Fan-out: update delivery latency (p50 solid, p99 dashed)",
                    variants,
                    outdir / "benchmarks-fanout.png",
                    "delivered",
                    goal_ms=30,
                )
            )
    if "presence" in by_name:
        written.append(
            _latency_plot(
                plt,
                ticker,
                by_name["presence"],
                "Presence: cursor at 20 Hz, time until every other client sees it",
                [("all clients moving their cursor", {})],
                outdir / "benchmarks-presence.png",
                "delivered",
                goal_ms=25,
            )
        )
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__)
        return 2
    for path in plot_all(_load(Path(argv[0])), Path(argv[1])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Markdown tables of a run, for docs/benchmarks.md.

python -m benchmarks.report results.jsonl > tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .runner import COLUMNS, case_label, fmt, ratio


def markdown(lines: list[dict]) -> str:
    out = []
    meta = next((line for line in lines if line.get("scenario") == "meta"), None)
    if meta:
        m = meta["machine"]
        out.append(
            f"Run of {meta['started']} ({meta['mode']} mode, {meta['workers']} load-generator processes): "
            f"{m['nproc']} cores ({m['cpu_model']}), {m['memory_gb']} GB, Python {m['python']}, "
            f"Linux {m['kernel']}, load average {m['loadavg'][0]:.2f} at start."
        )
        for impl, versions in meta["versions"].items():
            out.append(f"- {impl}: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        out.append("")
    for line in lines:
        name = line.get("scenario")
        if name not in COLUMNS:
            continue
        cols = COLUMNS[name]
        out.append(f"### {name}\n")
        header = ["case"]
        for _, label, unit, _better in cols:
            u = f" ({unit})" if unit and unit != "core" else (" (% of a core)" if unit == "core" else "")
            header.append(f"{label}{u}: ours / ref / ratio")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for row in line["cases"]:
            cells = [case_label(row["case"])]
            for key, _, unit, _ in cols:
                ours = row.get("ours", {}).get(key)
                theirs = row.get("reference", {}).get(key)
                r = ratio(ours, theirs)
                cells.append(f"{fmt(ours, unit)} / {fmt(theirs, unit)} / {'-' if r is None else f'{r:.2f}'}")
            out.append("| " + " | ".join(cells) + " |")
        if line.get("notes"):
            out.append("")
            for note in line["notes"]:
                out.append(f"- note: {note}")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    lines = [json.loads(x) for x in Path(argv[0]).read_text().splitlines() if x.strip()]
    print(markdown(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

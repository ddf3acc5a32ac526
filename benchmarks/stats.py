"""Small statistics helpers (no numpy needed)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary_ms(values: Sequence[float]) -> dict[str, float | None]:
    finite = sorted(v for v in values if math.isfinite(v))
    out: dict[str, float | None] = {}
    for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        value = percentile(finite, q)
        out[name] = None if value is None else round(value * 1000, 2)
    out["max"] = round(finite[-1] * 1000, 2) if finite else None
    return out


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


class MachineCpu:
    """Whole-machine CPU use from /proc/stat, to show what else ran during a measurement."""

    def __init__(self) -> None:
        self.t, self.busy = time.monotonic(), self._busy()

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def cores_used(self) -> float:
        """Cores busy (all processes) since construction."""
        return (self._busy() - self.busy) / max(time.monotonic() - self.t, 1e-9)

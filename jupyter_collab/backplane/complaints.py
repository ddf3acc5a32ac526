"""What Redis sent that the backplane refused, logged without letting a flood flood the log.

Redis is a trust boundary (see the README): anything read from it may be malformed, left
over from another version, or hostile. Each such message is skipped and reported in one
line; after that, the same kind of report about the same room (or channel) is only
counted until `interval` seconds have passed, and the next line says how many were left
out in between.
"""

from __future__ import annotations

import logging
import time
from typing import Any

MAX_KINDS = 1024


class Malformed(ValueError):
    """A message from Redis that does not have the form the backplane writes."""


class Complaints:
    """Rate-limited warnings: at most one line per kind (and room) per interval."""

    def __init__(self, log: logging.Logger, interval: float = 10.0) -> None:
        self.log = log
        self.interval = interval
        self._last: dict[str, float] = {}  # kind -> monotonic time of its last line
        self._left_out: dict[str, int] = {}  # kind -> lines not logged since that line

    def skipped(self, kind: str, where: str, reason: BaseException | str) -> None:
        """A message of `kind` (e.g. "stream entry") read for `where` was skipped."""
        self.warn(f"{kind} {where}", "skipped a malformed %s from Redis (%s: %s)", kind, where, short(reason))

    def warn(self, kind: str, message: str, *args: Any) -> None:
        """Log `message` unless a line of the same kind was logged less than `interval` ago."""
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return
        self._last[kind] = now
        if len(self._last) > MAX_KINDS:  # a long-lived process sees many rooms: forget old ones
            for old in [k for k, at in self._last.items() if now - at >= self.interval]:
                del self._last[old]
                self._left_out.pop(old, None)
        more = self._left_out.pop(kind, 0)
        suffix = f"; {more} more like it since the last report" if more else ""
        self.log.warning("jupyter_collab: " + message + suffix, *args)


def short(reason: BaseException | str, limit: int = 200) -> str:
    """The reason on one line, cut short: it may quote what an attacker wrote."""
    text = " ".join(str(reason).split()) or type(reason).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""A room stream's size in bytes, so that it is trimmed by bytes as well as by entries.

Redis trims a stream by entry count only (`XADD MAXLEN`), and an entry may be up to 1 MiB:
2,000 of them would park 2 GB per room. Every process reads every entry of the rooms it
holds, so it knows their sizes; the lease holder (one process per room) trims the oldest
entries once the stream is over its byte bound. Entries read less than `min_age` seconds
ago are never trimmed for bytes, so that a large update split in parts is not cut under
the feet of a process that is a little behind (which would ask for it again, and again).
"""

from __future__ import annotations

import time
from collections import deque


class StreamBudget:
    """The sizes of the stream's entries as this process read them, oldest first."""

    def __init__(self, max_bytes: int, max_entries: int, min_age: float) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.min_age = min_age
        self.bytes = 0
        self._entries: deque[tuple[float, int]] = deque()  # (monotonic time read, size)

    def note(self, size: int) -> None:
        """An entry was read."""
        self._entries.append((time.monotonic(), size))
        self.bytes += size
        if len(self._entries) > self.max_entries:  # trimmed by count when it was added
            self.bytes -= self._entries.popleft()[1]

    def over(self) -> bool:
        return self.bytes > self.max_bytes

    def trim(self) -> int | None:
        """Forget the oldest entries until the rest fits (leaving recent ones); the number
        of entries to keep (XTRIM MAXLEN), or None when there is nothing to trim yet."""
        cutoff = time.monotonic() - self.min_age
        dropped = 0
        while self.bytes > self.max_bytes and self._entries and self._entries[0][0] < cutoff:
            self.bytes -= self._entries.popleft()[1]
            dropped += 1
        return len(self._entries) if dropped else None

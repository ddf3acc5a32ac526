"""The save lease: which one process writes a room's file and merges what changed on disk.

`collab:{room}:lease` holds the holder's process id, set with NX and an expiry and renewed
by compare-and-expire, so that a dead holder's lease runs out (after `LEASE_SECONDS`) and
another process takes the room's saves over. This process's own view of how long it holds
a lease (`SaveLease`) ends before Redis's, so two processes never both believe they hold
it; `SaveLease` is the one place that view lives, whoever renews it.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Any

from .connection import RedisConnection

LEASE_SECONDS = 3.0  # a dead holder's rooms are saved again at most this long after it died
OWN_VIEW = 0.8  # the part of a lease's term this process counts on

# Compare-and-renew / compare-and-delete: only the holder may extend or free its lease.
IF_HOLDER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call"
RENEW = IF_HOLDER + "('pexpire', KEYS[1], ARGV[2]) end return 0"
RELEASE = IF_HOLDER + "('del', KEYS[1]) end return 0"


class LeaseTerms:
    """How long leases last, and the scripts that renew and free them (one per process)."""

    def __init__(self, conn: RedisConnection, seconds: float = LEASE_SECONDS) -> None:
        self.conn = conn
        self.ms = int(seconds * 1000)
        self.valid = seconds * OWN_VIEW  # our own view ends before Redis's
        self.renew = conn.redis.register_script(RENEW)
        self.release = conn.redis.register_script(RELEASE)


class Change(Enum):
    TAKEN = "taken"  # this process now holds the lease
    LOST = "lost"  # another process does


class SaveLease:
    """This process's hold on one room's save lease."""

    def __init__(self, terms: LeaseTerms, key: str) -> None:
        self.terms = terms
        self.key = key
        self._until = 0.0  # monotonic time until which this process holds the lease

    def holds(self) -> bool:
        return time.monotonic() < self._until

    async def try_acquire(self) -> bool:
        started = time.monotonic()
        conn = self.terms.conn
        if await conn.redis.set(self.key, conn.process, nx=True, px=self.terms.ms):
            self._until = started + self.terms.valid
            return True
        return False

    async def confirm(self) -> bool:
        """Right before a write: do we still hold the lease (renewing it)? Without Redis,
        our own clock says (nobody can take it over while Redis is unreachable)."""
        if not self.holds():
            return False
        started = time.monotonic()
        try:
            renewed = await self.terms.renew(keys=[self.key], args=[self.terms.conn.process, self.terms.ms])
        except Exception:
            return self.holds()
        self._until = started + self.terms.valid if renewed else 0.0
        return bool(renewed)

    async def release(self) -> None:
        self._until = 0.0
        await self.terms.release(keys=[self.key], args=[self.terms.conn.process])

    async def queue_claim(self, pipe: Any) -> None:
        """Into `pipe`: renew the lease if held, else try to take it (answered by `settle`)."""
        process, ms = self.terms.conn.process, self.terms.ms
        if self.holds():
            await self.terms.renew(keys=[self.key], args=[process, ms], client=pipe)
        else:
            pipe.set(self.key, process, nx=True, px=ms)

    def settle(self, granted: Any, started: float) -> Change | None:
        """Redis's answer to `queue_claim` (sent at `started`): did the holder change?"""
        held = self.holds()
        if granted:
            self._until = started + self.terms.valid
            return None if held else Change.TAKEN
        if held:
            self._until = 0.0
            return Change.LOST
        return None

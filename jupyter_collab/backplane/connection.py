"""The Redis connection as every part of the backplane shares it: the client, this
process's id, whether Redis answers, and what a failed command does.

Rooms keep serving their local clients while Redis is away: a command that fails marks
the connection lost (`lost`), and the reader loop (`redis.py`) resyncs every room once
Redis answers again. Fire-and-forget commands go through `guarded`, so that a failure is
never more than that mark.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError, RedisError

from .complaints import Complaints

ERRORS = (RedisError, OSError)
# Redis answers, but refuses these credentials (or this command, under an ACL): waiting
# for it will not help, so opening a room fails at once and the log says why.
REFUSED = (AuthenticationError, AuthorizationError, NoPermissionError)
MAX_BACKOFF = 2.0
# A Redis up for less than this may have restarted empty, and the processes holding rooms
# may not have republished them yet: a room without a snapshot is not loaded from its file
# until then (it would start a history unrelated to theirs).
RECOVERY_GRACE_SECONDS = 2 * MAX_BACKOFF + 1.0


def safe_url(url: str) -> str:
    """`url` as it may be logged: without a password (in the user part or the query)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    query = "&".join(p for p in parts.query.split("&") if p and not p.lower().startswith("password="))
    return urlunsplit((parts.scheme, user + parts.netloc.rpartition("@")[2], parts.path, query, ""))


class RedisConnection:
    """This process's Redis client and its health."""

    def __init__(self, url: str, log: logging.Logger) -> None:
        self.url = url
        self.safe_url = safe_url(url)
        self.log = log
        self.redis = Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=5.0)
        self.process = uuid.uuid4().hex
        self.complaints = Complaints(log)
        self.connected = True  # until a command fails
        self.refused = False  # the last failure was Redis refusing our credentials
        self._background: set[asyncio.Task] = set()

    def lost(self, exc: BaseException) -> None:
        """A command failed: rooms go on locally and resync when Redis answers again. Redis
        refusing our credentials (or, under an ACL, a command) gets an error line of its
        own: unlike an outage, it needs someone to fix the configuration."""
        refused = isinstance(exc, REFUSED)
        if refused and not self.refused:
            self.log.error(
                "jupyter_collab: Redis at %s refused the backplane (%s); check the user, password "
                "and ACL in backplane_url: rooms cannot be opened until Redis accepts them",
                self.safe_url,
                exc,
            )
        elif self.connected and not refused:
            self.log.warning(
                "jupyter_collab: lost the Redis backplane (%s); rooms keep serving their local "
                "clients, reconnecting",
                exc,
            )
        self.refused = refused
        self.connected = False

    def answered(self) -> None:
        """Redis answers again."""
        self.connected = True
        self.refused = False

    async def guarded(self, command: Awaitable[Any]) -> None:
        """Run a fire-and-forget command; a failure marks Redis as lost (a resync follows)."""
        try:
            await command
        except ERRORS as exc:
            self.lost(exc)

    def background(self, coro: Awaitable[Any]) -> None:
        """Run `coro` without waiting for it (kept referenced until it is done)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def just_restarted(self) -> bool:
        """Is Redis younger than the grace period (maybe restarted empty)?"""
        info = await self.redis.info("server")
        return int(info.get("uptime_in_seconds", RECOVERY_GRACE_SECONDS)) < RECOVERY_GRACE_SECONDS

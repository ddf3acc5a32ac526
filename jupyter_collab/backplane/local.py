"""The in-process backplane (the default): one process owns each room and saves it.

Nothing is shared, so a room starts from its file and history, owned by this process, and
is never attached to a replica: it keeps the no-op `UNREPLICATED` (`rooms/replica.py`).
`Backplane` is what the app needs of any backplane; `redis.py` is the other one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..rooms.replica import Claim, ReplicatedRoom, Replication, Start

# Called with a control message (e.g. {"op": "recheck"}) published by another process.
ControlHandler = Callable[[dict[str, Any]], Awaitable[None]]


class BackplaneUnavailable(Exception):
    """A room could not be opened because the backplane (Redis) did not answer in time;
    the session endpoint answers 503 and the socket closes with 1013 (try again later)."""


class Backplane(Replication, Protocol):
    """How server processes that serve the same rooms share them."""

    async def start(self, on_control: ControlHandler) -> None:
        """Begin serving (the Redis backplane connects and starts its loops here)."""

    async def publish_control(self, message: dict[str, Any]) -> None:
        """Tell every other process."""

    async def stop(self) -> None:
        """Release what `start` took, after every room was closed."""


class AloneClaim:
    """A room only this process holds: it starts from its file and history, and this
    process saves it."""

    start = Start()

    async def attach(self, room: ReplicatedRoom) -> None:
        """Nothing to link."""

    async def abandon(self) -> None:
        """Nothing was taken."""


class LocalBackplane:
    """Nothing shared: a room is loaded from its file and history, and is this process's alone."""

    async def start(self, on_control: ControlHandler) -> None:
        pass

    async def claim(self, room_id: str) -> Claim:
        return AloneClaim()

    async def publish_control(self, message: dict[str, Any]) -> None:
        pass  # there are no other processes

    async def stop(self) -> None:
        pass

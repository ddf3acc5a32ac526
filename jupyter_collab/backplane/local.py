"""The in-process backplane (the default): one process owns each room and saves it.

Every hook is a no-op or the single-process behaviour, so the local path costs nothing:
rooms keep `link = None` and never test anything more than that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..rooms.document import DocumentRoom

# Called with a control message (e.g. {"op": "recheck"}) published by another process.
ControlHandler = Callable[[dict[str, Any]], Awaitable[None]]


class BackplaneUnavailable(Exception):
    """A room could not be opened because the backplane (Redis) did not answer in time;
    the session endpoint answers 503 and the socket closes with 1013 (try again later)."""


class LocalBackplane:
    """Nothing shared: a room is loaded from its file and history, and is this process's alone."""

    async def start(self, on_control: ControlHandler) -> None:
        """Begin serving (the Redis backplane connects and starts its loops here)."""

    async def open(self, room: DocumentRoom) -> None:
        """Load a new room, linked to the same room on other processes if there are any."""
        await room.load()

    async def publish_control(self, message: dict[str, Any]) -> None:
        """Tell every other process (here: there are none)."""

    async def stop(self) -> None:
        """Release what `start` took, after every room was closed."""

"""What the handlers need from the extension, as a typed seam.

Handlers find the extension in Tornado's settings (`settings["jupyter_collab"]`, put there by
`CollabApp`); reading it through `collab_of` gives them this Protocol instead of `Any`, so
a checker sees every use, and the handlers never import `app.py` (which imports them).
"""

from __future__ import annotations

from typing import Any, Protocol

from tornado.web import RequestHandler

from ..permissions import Access
from ..rooms.gate import Gate
from ..rooms.manager import RoomManager


class Budget(Protocol):
    """A rate limit shared by all requests of its kind."""

    def allow(self) -> bool: ...


class CollabService(Protocol):
    session_id: str  # the history store's id: JupyterLab reloads when it changes
    rooms: RoomManager
    recheck_rate: Budget
    max_message_bytes: int
    max_send_buffer_bytes: int
    max_document_messages_per_second: float
    max_awareness_messages_per_second: float
    max_sync_requests_per_minute: float
    max_recheck_requests_per_minute: float
    message_burst: float
    api_presence_seconds: float

    @property
    def gate(self) -> Gate: ...

    def path_of(self, room_id: str) -> str: ...

    async def access(self, user: Any, path: str, handler: Any) -> Access: ...

    async def recheck_permissions(self) -> dict[str, int]: ...


def collab_of(handler: RequestHandler) -> CollabService:
    return handler.settings["jupyter_collab"]

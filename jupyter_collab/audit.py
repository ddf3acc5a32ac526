"""Audit events (jupyter-events): join, leave, refused change, role change, revocation,
and every edit made through the REST API (who, which operation, which cell).

The schema is published in `events/room-activity.yaml`; route the events anywhere
jupyter-events can (`c.EventLogger.handlers = [...]`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).parent / "events" / "room-activity.yaml"
SCHEMA_ID = "https://events.jupyter-collab.org/room-activity/v1"


class AuditTrail:
    """Implements rooms' `RoomEvents` by emitting jupyter-events."""

    def __init__(self, event_logger: Any) -> None:
        self.event_logger = event_logger
        if event_logger is not None:
            event_logger.register_event_schema(SCHEMA_PATH)

    def emit(self, action: str, room: Any, conn: Any, **details: Any) -> None:
        """An event about a WebSocket connection."""
        self.record(action, room, conn.identity.get("username") or "", conn.access.role.value, **details)

    def record(self, action: str, room: Any, username: str, role: str, **details: Any) -> None:
        """An event about anybody (REST callers have no connection)."""
        if self.event_logger is None:
            return
        file = getattr(room, "file", None)
        data = {
            "action": action,
            "room": room.room_id,
            "path": file.path if file is not None else None,
            "username": username,
            "role": role,
            **details,
        }
        self.event_logger.emit(schema_id=SCHEMA_ID, data=data)

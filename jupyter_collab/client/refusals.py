"""What the server refused of this client's changes. The server drops a refused change
(with whatever was sent alongside it) and says so in a `denied` notice, or in the JSON
reason of the 1003 close that makes the client start afresh. The client keeps the reasons
and raises them, as `ChangeRefused`, from the next `flush()`."""

from __future__ import annotations

from ..protocol import VIEWERS_CANNOT_SAVE, refusal_in_reload_reason
from .errors import ChangeRefused
from .room import RoomClient


class Refusals:
    """The refusals not yet raised, and how far the current connection's notices were read."""

    def __init__(self) -> None:
        self._reasons: list[str] = []
        self._notices_seen = 0

    def collect(self, room: RoomClient | None) -> None:
        """Keep the refusals among the notices `room` received since the last call."""
        if room is None:
            return
        for notice in room.notices[self._notices_seen :]:
            # A viewer's save request is refused too, but that is no change of ours dropped.
            if notice.get("type") == "denied" and notice.get("reason") != VIEWERS_CANNOT_SAVE:
                self._reasons.append(str(notice.get("reason") or "change refused"))
        self._notices_seen = len(room.notices)

    def connection_replaced(self, close_reason: str | None) -> None:
        """The server closed the connection (already `collect`ed) to start afresh: keep the
        refusal its close reason reports, unless a notice said it already."""
        refusal = refusal_in_reload_reason(close_reason)
        if refusal is not None and not self._reasons:
            self._reasons.append(refusal)
        self._notices_seen = 0  # the fresh connection's notices start over

    def raise_any(self) -> None:
        """Raise `ChangeRefused` with the refusals kept so far (and forget them)."""
        if self._reasons:
            reasons, self._reasons = self._reasons, []
            raise ChangeRefused(reasons)

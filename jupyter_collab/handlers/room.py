"""WebSocket `/api/collaboration/room/{room_id}`: one client connection to a room.

Per-client checks live here (pycrdt-websocket's room cannot see who sent a message):
authentication and origin on the upgrade, frame size, protocol validity, and a bounded
send buffer. Each problem closes only the offending socket, with a code the client
understands, and logs one line.
"""

from __future__ import annotations

from asyncio import Future
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol13

from ..documents import BadRoomId
from ..persistence.filesync import FileUnavailable
from ..protocol import ProtocolError, decode_message
from ..rooms.room import Room

CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404
CLOSE_SERVER_ERROR = 4500
CLOSE_TRY_AGAIN_LATER = 1013
_MAX_REASON_BYTES = 123  # a close frame's reason must fit in 125 bytes with the code


class RoomHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):
    auth_resource = "contents"

    room: Room | None = None
    label = "?"

    def set_default_headers(self) -> None:
        """JupyterHandler's default headers make no sense on a WebSocket."""

    @property
    def collab(self) -> Any:
        return self.settings["jupyter_collab"]

    @property
    def max_message_size(self) -> int:  # type: ignore[override]
        return self.collab.max_message_bytes

    async def pre_get(self) -> None:
        user = self.current_user
        allowed = await ensure_async(self.authorizer.is_authorized(self, user, "read", "contents"))
        if not allowed:
            raise web.HTTPError(403)

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.pre_get()
        await super().get(*args, **kwargs)

    async def open(self, room_id: str) -> None:  # type: ignore[override]
        super().open()
        self.set_nodelay(True)  # no Nagle: cursor moves must not wait 40 ms for an ACK
        user = self.current_user
        self.label = f"{getattr(user, 'username', '?')}@{self.request.remote_ip}"
        self._queued_bytes = 0
        try:
            room = await self.collab.rooms.get(room_id)
        except BadRoomId as exc:
            self._reject(CLOSE_BAD_REQUEST, f"bad room id: {exc}")
            return
        except FileUnavailable as exc:
            self._reject(CLOSE_NOT_FOUND if "no file has id" in str(exc) else CLOSE_BAD_REQUEST, str(exc))
            return
        if self.ws_connection is None or self.ws_connection.is_closing():
            self.collab.rooms.release(room)
            return
        self.room = room
        room.join(self)

    def _reject(self, code: int, reason: str) -> None:
        self.log.warning("jupyter_collab: %s rejected from room: %s", self.label, reason)
        self.close_with(code, reason)

    def on_message(self, message: str | bytes) -> None:
        room = self.room
        if room is None:
            return
        try:
            if isinstance(message, str):
                raise ProtocolError("text frames are not part of the protocol")
            room.handle(self, decode_message(message))
        except ProtocolError as exc:
            self.log.warning("jupyter_collab: %s sent a bad message to %s: %s", self.label, room.room_id, exc)
            self.close_with(CLOSE_BAD_REQUEST, f"bad message: {exc}")
        except Exception:
            self.log.exception("jupyter_collab: error handling a message from %s", self.label)
            self.close_with(CLOSE_SERVER_ERROR, "server error")

    def get_websocket_protocol(self) -> WebSocketProtocol13 | None:
        protocol = super().get_websocket_protocol()
        if isinstance(protocol, WebSocketProtocol13):
            protocol.__class__ = _LoggingProtocol
        return protocol

    def on_oversized(self) -> None:
        """Tornado refuses an oversized frame itself, before on_message: say so once."""
        self.log.warning(
            "jupyter_collab: %s sent a message over max_message_bytes (%d); closed with 1009",
            self.label,
            self.max_message_size,
        )

    def on_close(self) -> None:
        room, self.room = self.room, None
        if room is not None:
            room.leave(self)
            self.collab.rooms.release(room)

    # -- Connection protocol for rooms -------------------------------------------------------

    def send(self, frame: bytes) -> None:
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        if self._queued_bytes > self.collab.max_send_buffer_bytes:
            self.log.warning(
                "jupyter_collab: %s is not reading fast enough; closing it to resync", self.label
            )
            self.close_with(CLOSE_TRY_AGAIN_LATER, "too slow: reconnect to resync")
            return
        try:
            future = self.write_message(frame, binary=True)
        except WebSocketClosedError:
            return
        size = len(frame)
        self._queued_bytes += size
        future.add_done_callback(lambda done: self._sent(done, size))

    def _sent(self, done: Future, size: int) -> None:
        self._queued_bytes -= size
        if not done.cancelled():
            done.exception()  # a write to a closed stream is expected, not an error

    def close_with(self, code: int, reason: str) -> None:
        encoded = reason.encode("utf-8")[:_MAX_REASON_BYTES]
        self.close(code, encoded.decode("utf-8", errors="ignore"))
        # Leave the room now: nothing more is sent to or accepted from this socket.
        self.on_close()


class _LoggingProtocol(WebSocketProtocol13):
    """Tornado's protocol, telling the handler when it closes for an oversized frame."""

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == 1009 and isinstance(self.handler, RoomHandler) and not self.server_terminated:
            self.handler.on_oversized()
        super().close(code, reason)

"""WebSocket `/api/collaboration/room/{room_id}`: one client connection to a room.

Per-client checks live here (pycrdt-websocket's room cannot see who sent a message):
authentication and origin on the upgrade, the user's access from the permission policy,
frame size and message rates (sync requests apart: each is answered with the whole
document), protocol validity, and a bounded send buffer. Each problem closes only the
offending socket, with a code the client understands, and logs one line.
"""

from __future__ import annotations

import json
import struct
import time
from asyncio import Future
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol13

from ..backplane import BackplaneUnavailable
from ..documents.kinds import BadRoomId
from ..permissions import Access, Role, identity
from ..persistence.files import FileUnavailable
from ..protocol import (
    AwarenessMessage,
    CloseCode,
    OverLimit,
    ProtocolError,
    SyncMessage,
    SyncType,
    TooBig,
    custom_reply_frame,
    decode_message,
)
from ..rooms.gate import GateRefused
from ..rooms.manager import UnknownRoom
from ..rooms.room import Room
from .service import CollabService, collab_of

_MAX_REASON_BYTES = 123  # a close frame's reason must fit in 125 bytes with the code
_REMEMBERED_FRAME_BYTES = 65536


_last_payload: bytes = b""
_last_frame: bytes = b""


def _binary_frame(payload: bytes) -> bytes:
    """A complete unmasked binary WebSocket frame (RFC 6455) for `payload`; the last one is
    remembered, since a room's flush sends one payload to each of its clients in turn."""
    global _last_payload, _last_frame
    if payload is _last_payload:
        return _last_frame
    length = len(payload)
    if length < 126:
        header = bytes((0x82, length))
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", 0x82, 126, length)
    else:
        header = struct.pack("!BBQ", 0x82, 127, length)
    frame = header + payload
    if length <= _REMEMBERED_FRAME_BYTES:  # not a large document's state: it would stay in memory
        _last_payload, _last_frame = payload, frame
    return frame


class RateLimit:
    """A token bucket: `rate` messages per second on average, bursts up to `burst`."""

    __slots__ = ("rate", "burst", "tokens", "stamp")  # two per connection held open

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def allow(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class SendBuffer:
    """What waits in this process to be sent to one client, bounded by `limit` bytes.

    Only frames the socket did not take at once count: most writes go straight into the
    kernel's socket buffer (Tornado then resolves their future at once), and those cost
    this process nothing; a client that stops reading fills the kernel's buffers first,
    then this one. A frame is refused when it would take the buffer over the limit (not
    once the buffer is already over it), except a frame alone: a document's state larger
    than the whole limit still reaches a client that reads.
    """

    __slots__ = ("limit", "queued")  # one per connection held open

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.queued = 0

    def fits(self, size: int) -> bool:
        return not self.queued or self.queued + size <= self.limit

    def track(self, future: Future, size: int) -> None:
        """Count a frame of `size` bytes until its write completes."""
        if future.done():
            return
        self.queued += size
        future.add_done_callback(lambda done: self._sent(done, size))

    def _sent(self, done: Future, size: int) -> None:
        self.queued -= size
        if not done.cancelled():
            done.exception()  # a write to a closed stream is expected, not an error


class RoomHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):
    auth_resource = "contents"

    room: Room | None = None
    label = "?"
    access = Access(Role.NONE)
    identity: dict[str, Any] = {}

    def set_default_headers(self) -> None:
        """JupyterHandler's default headers make no sense on a WebSocket."""

    def set_cookie(self, *args: Any, **kwargs: Any) -> None:
        """No cookies on a WebSocket upgrade: the login cookie the identity provider sets
        after a token login is of no use to a socket (the page that opened it has one, a
        program sends its token), and it stayed in memory as long as the socket: ~2 KB of
        10,000 connections' ~24 KB each."""

    @property
    def collab(self) -> CollabService:
        return collab_of(self)

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
        collab = self.collab
        self._buffer = SendBuffer(collab.max_send_buffer_bytes)
        self._notified: set[str] = set()
        self._doc_rate = RateLimit(collab.max_document_messages_per_second, collab.message_burst)
        self._awareness_rate = RateLimit(collab.max_awareness_messages_per_second, collab.message_burst)
        sync_requests = collab.max_sync_requests_per_minute
        self._sync_rate = RateLimit(sync_requests / 60, 1 + sync_requests)  # the first, then a few a minute
        try:
            collab.rooms.check_room_id(room_id)
            path = collab.path_of(room_id)
            self.access = await collab.access(user, path, self)
            if self.access.role is Role.NONE:
                self._reject(CloseCode.FORBIDDEN, "no access to this document")
                return
            self.identity = identity(user, self.access.role)
            room = await collab.rooms.get(room_id)
        except BadRoomId as exc:
            self._reject(CloseCode.BAD_REQUEST, f"bad room id: {exc}")
            return
        except UnknownRoom as exc:
            self._reject(CloseCode.NOT_FOUND, str(exc))
            return
        except FileUnavailable as exc:
            missing = "no file has id" in str(exc)
            self._reject(CloseCode.NOT_FOUND if missing else CloseCode.BAD_REQUEST, str(exc))
            return
        except BackplaneUnavailable as exc:
            self._reject(CloseCode.TRY_AGAIN_LATER, str(exc))
            return
        if self.ws_connection is None or self.ws_connection.is_closing():
            collab.rooms.release(room)
            return
        self.room = room
        refusal = collab.rooms.admit(room, self, user.username)
        if refusal is not None:
            self.room = None
            self._reject(CloseCode.POLICY_VIOLATION, refusal)
            collab.rooms.release(room)

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
            decoded = decode_message(message)
            limit = self._awareness_rate if isinstance(decoded, AwarenessMessage) else self._doc_rate
            if not limit.allow():
                kind = "awareness" if limit is self._awareness_rate else "document"
                self._reject(CloseCode.POLICY_VIOLATION, f"too many {kind} messages per second")
                return
            if (
                isinstance(decoded, SyncMessage)
                and decoded.kind is SyncType.STEP1
                and not self._sync_rate.allow()
            ):
                self._reject(CloseCode.POLICY_VIOLATION, "too many sync requests per minute")
                return
            room.handle(self, decoded)
        except OverLimit as exc:
            code = CloseCode.TOO_BIG if isinstance(exc, TooBig) else CloseCode.POLICY_VIOLATION
            self._reject(code, str(exc))
        except ProtocolError as exc:
            self.log.warning("jupyter_collab: %s sent a bad message to %s: %s", self.label, room.room_id, exc)
            self.close_with(CloseCode.BAD_REQUEST, f"bad message: {exc}")
        except Exception:
            self.log.exception("jupyter_collab: error handling a message from %s", self.label)
            self.close_with(CloseCode.SERVER_ERROR, "server error")

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
            self.collab.rooms.leave(room, self, self.current_user.username)

    # -- Connection protocol for rooms -------------------------------------------------------

    def send(self, frame: bytes) -> None:
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        size = len(frame)
        if not self._buffer.fits(size):
            self.log.warning(
                "jupyter_collab: %s is not reading fast enough; closing it to resync", self.label
            )
            self.close_with(CloseCode.TRY_AGAIN_LATER, "too slow: reconnect to resync")
            return
        protocol = self.ws_connection
        try:
            if isinstance(protocol, WebSocketProtocol13) and protocol._compressor is None:
                # The same frame goes to every client of a room: framed once (server frames
                # are not masked) and written straight to the stream, without the Task that
                # `write_message` makes per write (most of a busy room's CPU went there).
                future = protocol.stream.write(_binary_frame(frame))
            else:
                future = self.write_message(frame, binary=True)
        except (WebSocketClosedError, StreamClosedError):
            return
        self._buffer.track(future, size)

    def notify(self, body: dict[str, Any]) -> None:
        """Custom-channel JSON message. Each distinct refusal is told once per connection (a
        client that keeps sending gets one notice, not thousands); a role notice goes out
        every time: rights that change back (editor, viewer, editor) must reach the client."""
        if body.get("type") == "denied":
            key = json.dumps(body, sort_keys=True)
            if key in self._notified:
                return
            self._notified.add(key)
        self.send(custom_reply_frame(body))

    async def may_open(self, path: str) -> bool:
        """Whether this user may open `path` (as a client spelled it: aliases are refused)."""
        collab = self.collab
        try:
            canonical = collab.gate.canonical(path)
        except GateRefused:
            return False
        if not canonical:
            return False  # the root folder is not a document
        access = await collab.access(self.current_user, canonical, self)
        return access.role is not Role.NONE

    def close_with(self, code: int, reason: str) -> None:
        encoded = reason.encode("utf-8")[:_MAX_REASON_BYTES]
        self.close(code, encoded.decode("utf-8", errors="ignore"))
        # Leave the room now: nothing more is sent to or accepted from this socket.
        self.on_close()


class _LoggingProtocol(WebSocketProtocol13):
    """Tornado's protocol, telling the handler when it closes for an oversized frame."""

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == CloseCode.TOO_BIG and isinstance(self.handler, RoomHandler) and not self.server_terminated:
            self.handler.on_oversized()
        super().close(code, reason)

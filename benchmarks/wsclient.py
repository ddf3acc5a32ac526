"""A lean WebSocket + Yjs client for load generation.

Written on asyncio's Protocol API (no coroutine per frame, no per-message futures), so one
generator process can keep thousands of sockets and tens of thousands of frames per second
without becoming the bottleneck. It speaks RFC 6455 (client frames masked with a random
key, no extensions) and the y-protocols sync/awareness framing; it deliberately shares no
code with the server under test.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from pycrdt import Doc

# -- lib0 encoding --------------------------------------------------------------------------


def enc_uint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def dec_uint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def enc_bytes(data: bytes) -> bytes:
    return enc_uint(len(data)) + data


def sync_frame(sub: int, payload: bytes) -> bytes:
    return bytes([0, sub]) + enc_bytes(payload)


def awareness_frame(client_id: int, clock: int, state_json: str) -> bytes:
    body = enc_uint(1) + enc_uint(client_id) + enc_uint(clock) + enc_bytes(state_json.encode())
    return b"\x01" + enc_bytes(body)


def decode_state_vector(state: bytes) -> dict[int, int]:
    count, pos = dec_uint(state, 0)
    out = {}
    for _ in range(count):
        client, pos = dec_uint(state, pos)
        clock, pos = dec_uint(state, pos)
        out[client] = clock
    return out


def decode_awareness_clocks(body: bytes, pos: int) -> list[tuple[int, int]]:
    """(client id, clock) of each entry of an awareness update; states are skipped."""
    count, pos = dec_uint(body, pos)
    out = []
    for _ in range(count):
        client, pos = dec_uint(body, pos)
        clock, pos = dec_uint(body, pos)
        length, pos = dec_uint(body, pos)
        pos += length
        out.append((client, clock))
    return out


# -- WebSocket ------------------------------------------------------------------------------


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


def encode_frame(payload: bytes, opcode: int = 2) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return header + key + _mask(payload, key)


class HandshakeError(Exception):
    pass


class WebSocket(asyncio.Protocol):
    """One client socket; `on_message(payload, t)` gets each binary message and the
    monotonic time at which the bytes carrying it were read."""

    def __init__(self, url: str, headers: dict[str, str], on_message: Callable[[bytes, float], None]):
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.headers = headers
        self.on_message = on_message
        self.on_close: Callable[[], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self._buf = bytearray()
        self._handshaken = False
        self._fragments: list[bytes] = []

    async def connect(self, timeout: float = 30.0) -> WebSocket:
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.create_connection(lambda: self, self.host, self.port), timeout)
        await asyncio.wait_for(asyncio.shield(self.opened), timeout)
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {self.target} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in self.headers.items()),
        ]
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self._buf
        buf += data
        if not self._handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            status = head.split("\r\n", 1)[0]
            if " 101 " not in status + " ":
                if not self.opened.done():
                    self.opened.set_exception(HandshakeError(status))
                self.transport.close()  # type: ignore[union-attr]
                return
            self._handshaken = True
            if not self.opened.done():
                self.opened.set_result(True)
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            masked = b1 & 0x80
            if masked:
                head += 4
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            if masked:
                payload = _mask(payload, bytes(buf[pos + head - 4 : pos + head]))
            pos += head + length
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode == 0:
                self._fragments.append(payload)
                if fin:
                    payload = b"".join(self._fragments)
                    self._fragments = []
                    self.on_message(payload, now)
            elif opcode in (1, 2):
                if fin:
                    self.on_message(payload, now)
                else:
                    self._fragments = [payload]
            elif opcode == 8:
                if len(payload) >= 2:
                    self.close_code = int.from_bytes(payload[:2], "big")
                    self.close_reason = payload[2:].decode("utf-8", "replace")
                else:
                    self.close_code = 1005
                self._write(encode_frame(payload[:2], 8))
                self.transport.close()  # type: ignore[union-attr]
            elif opcode == 9:
                self._write(encode_frame(payload, 10))
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(f"connection lost: {exc}"))
        self.closed.set()
        if self.on_close is not None:
            self.on_close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send(self, payload: bytes) -> None:
        self._write(encode_frame(payload))

    def close(self, code: int = 1000) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._write(encode_frame(code.to_bytes(2, "big"), 8))
            # The server answers with its close frame and closes; don't wait for it.
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


# -- Yjs client -----------------------------------------------------------------------------


class YClient:
    """A collaborator: syncs a pycrdt document (or, with `keep_doc=False`, only answers the
    handshake) and reports document updates and awareness entries to callbacks."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        client_id: int | None = None,
        keep_doc: bool = True,
        on_update: Callable[[YClient, bytes, float], None] | None = None,
        on_awareness: Callable[[YClient, list[tuple[int, int]], float], None] | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.doc: Doc | None = (
            (Doc(client_id=client_id) if client_id is not None else Doc()) if keep_doc else None
        )
        self.client_id = client_id if client_id is not None else (self.doc.client_id if self.doc else 0)
        self.on_update = on_update
        self.on_awareness = on_awareness
        self.ws: WebSocket | None = None
        self.synced: asyncio.Future = asyncio.get_running_loop().create_future()
        self.synced_at: float | None = None
        self.sync_check: Callable[[YClient], bool] | None = None
        self.frames = 0
        self.bytes = 0
        self.awareness_clock = 0
        self._subscription = None
        self._applying = False
        self._got_step2 = False

    async def connect(self, timeout: float = 60.0) -> YClient:
        self.ws = WebSocket(self.url, {"Authorization": f"token {self.token}"}, self._on_message)
        self.ws.on_close = self._on_close
        await self.ws.connect(timeout)
        state = self.doc.get_state() if self.doc is not None else b"\x00"
        self.ws.send(sync_frame(0, state))
        await asyncio.wait_for(asyncio.shield(self.synced), timeout)
        return self

    def _on_close(self) -> None:
        if not self.synced.done():
            ws = self.ws
            code = ws.close_code if ws else None
            reason = ws.close_reason if ws else ""
            self.synced.set_exception(HandshakeError(f"closed before sync: {code} {reason}"))

    def watch_local_changes(self) -> None:
        """Send this document's own changes to the server as they happen."""
        assert self.doc is not None

        def on_change(event) -> None:
            if not self._applying and self.ws is not None:
                update = event.update
                if update != b"\x00\x00":
                    self.ws.send(sync_frame(2, update))

        self._subscription = self.doc.observe(on_change)

    def set_awareness(self, state_json: str) -> None:
        self.awareness_clock += 1
        assert self.ws is not None
        self.ws.send(awareness_frame(self.client_id, self.awareness_clock, state_json))

    def _on_message(self, payload: bytes, t: float) -> None:
        self.frames += 1
        self.bytes += len(payload)
        kind = payload[0]
        if kind == 0:
            sub = payload[1]
            body_len, pos = dec_uint(payload, 2)
            body = payload[pos : pos + body_len]
            if sub == 0:
                reply = self.doc.get_update(body) if self.doc is not None else b"\x00\x00"
                self.ws.send(sync_frame(1, reply))  # type: ignore[union-attr]
                return
            if self.doc is not None:
                self._applying = True
                try:
                    self.doc.apply_update(body)
                finally:
                    self._applying = False
            if not self.synced.done():
                # synced: step 2 received and (if asked) the document complete, even if the
                # server sends part of it as updates after step 2
                self._got_step2 = self._got_step2 or sub == 1
                if self._got_step2 and (self.sync_check is None or self.sync_check(self)):
                    self.synced_at = t
                    self.synced.set_result(t)
                return
            if self.on_update is not None:
                self.on_update(self, body, t)
        elif kind == 1 and self.on_awareness is not None:
            _, pos = dec_uint(payload, 1)
            self.on_awareness(self, decode_awareness_clocks(payload, pos), t)

    def state_vector(self) -> dict[int, int]:
        assert self.doc is not None
        return decode_state_vector(self.doc.get_state())

    def close(self) -> None:
        if self.doc is not None and self._subscription is not None:
            self.doc.unobserve(self._subscription)
            self._subscription = None
        if self.ws is not None:
            self.ws.close()

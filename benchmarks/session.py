"""The HTTP session request that finds a file's room, as JupyterLab sends it.

Kept free of heavy imports: the load-generator processes import it.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote


async def open_session(base_url: str, path: str, token: str, timeout: float = 60.0) -> dict:
    """`PUT /api/collaboration/session/{path}` (notebook, json), like JupyterLab does."""
    host, port = base_url.replace("http://", "").split(":")
    body = json.dumps({"format": "json", "type": "notebook"}).encode()
    request = (
        f"PUT /api/collaboration/session/{quote(path)} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nAuthorization: token {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body

    async def exchange() -> dict:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(request)
            raw = await reader.read()
        finally:
            writer.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status not in (200, 201):
            raise RuntimeError(f"session PUT {path}: HTTP {status}: {payload[:200]!r}")
        if b"transfer-encoding: chunked" in head.lower():
            payload = _dechunk(payload)
        return json.loads(payload)

    return await asyncio.wait_for(exchange(), timeout)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


def room_url(base_url: str, session: dict) -> str:
    room = f"{session['format']}:{session['type']}:{session['fileId']}"
    return f"{base_url.replace('http://', 'ws://')}/api/collaboration/room/{room}?sessionId={session['sessionId']}"

"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import nbformat
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

from jupyter_collab.client import RoomClient, open_session, room_url
from jupyter_collab.protocol import (
    AwarenessEntry,
    AwarenessMessage,
    MessageType,
    SyncMessage,
    awareness_frame,
    decode_awareness,
    decode_message,
    decode_server_notice,
    encode_awareness,
)

from .server import TOKEN, ServerProcess


def write_notebook(root: Path, name: str | None = None, sources: list[str] | None = None) -> str:
    """Write a notebook with one code cell per source; returns its API path."""
    name = name or f"nb-{uuid.uuid4().hex[:8]}.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for source in sources if sources is not None else ["print('hello')"]:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    nbformat.write(nb, root / name)
    return name


def read_notebook(root: Path, path: str) -> dict[str, Any]:
    return json.loads((root / path).read_text())


async def join(
    server: ServerProcess,
    path: str,
    *,
    file_format: str = "json",
    file_type: str = "notebook",
    user: dict[str, Any] | None = None,
    token: str = TOKEN,
) -> RoomClient:
    session = await open_session(server.url, path, token, file_format=file_format, file_type=file_type)
    return await RoomClient(room_url(server.url, session, token), user=user).connect()


def code_cell(
    cell_id: str, source: str, metadata: dict[str, Any], outputs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """An nbformat code cell with this id (a notebook's content, for YNotebook.set)."""
    return {
        "id": cell_id,
        "cell_type": "code",
        "source": source,
        "metadata": metadata,
        "outputs": outputs or [],
        "execution_count": 1 if outputs else None,
    }


async def eventually(check, timeout: float = 10.0, interval: float = 0.05):
    """Wait until `check()` is truthy (returns its value) or fail with the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)


def sources(client: RoomClient) -> list[str]:
    return [cell["source"] for cell in client.notebook().get(deduplicate=False)["cells"]]


def cell_ids(client: RoomClient) -> list[str]:
    return [ycell.get("id") for ycell in client.notebook().ycells]


def disk_sources(server: Any, path: str) -> list[str]:
    try:
        cells = read_notebook(server.root, path)["cells"]
    except (json.JSONDecodeError, FileNotFoundError):
        return []
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]


def append_text(client: RoomClient, index: int, text: str) -> None:
    """Append to cell `index`'s source (pycrdt offsets are UTF-8 bytes)."""
    ytext = client.notebook().ycells[index]["source"]
    ytext.insert(len(str(ytext).encode("utf-8")), text)


def log_lines(server: Any, *needles: str) -> list[str]:
    """Server log lines containing every one of `needles` (case-insensitive)."""
    wanted = [needle.lower() for needle in needles]
    return [line for line in server.log().splitlines() if all(n in line.lower() for n in wanted)]


async def http(
    server: Any,
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str,
    headers: dict[str, str] | None = None,
) -> HTTPResponse:
    """One request to the server (`url` from its root) as the user of `token`; errors are
    answers (`raise_error=False`). `body`: JSON to send, or str/bytes sent as they are."""
    raw = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    if raw is None and method in ("POST", "PATCH", "PUT"):
        raw = ""
    return await AsyncHTTPClient().fetch(
        HTTPRequest(
            f"{server.url}{url}",
            method=method,
            body=raw,
            headers={"Authorization": f"token {token}", **(headers or {})},
            allow_nonstandard_methods=True,
        ),
        raise_error=False,
    )


async def recheck_permissions(server: Any, token: str) -> dict[str, int]:
    """Ask the server to re-check every open connection's access now (as an admin would)."""
    response = await http(server, "POST", "/api/collaboration/permissions/recheck", "{}", token=token)
    response.rethrow()
    return json.loads(response.body)


class RawPeer:
    """A raw room socket: sends crafted frames, records what the server sends and how it
    closes (RoomClient would speak the protocol correctly)."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        self.ws = ws
        self.states: dict[int, dict[str, Any]] = {}
        self.history: list[tuple[int, dict[str, Any] | None]] = []  # every state received
        self.sync: list[SyncMessage] = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.clock = 0
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, server: Any, room_id: str, token: str) -> RawPeer:
        ws_url = server.url.replace("http://", "ws://", 1)
        return cls(await websocket_connect(f"{ws_url}/api/collaboration/room/{room_id}?token={token}"))

    async def _read(self) -> None:
        while True:
            frame = await self.ws.read_message()
            if frame is None:
                self.close_code, self.close_reason = self.ws.close_code, self.ws.close_reason
                self.closed.set()
                return
            assert isinstance(frame, bytes)
            if frame[0] == MessageType.CUSTOM:
                assert decode_server_notice(frame) is not None
                continue
            message = decode_message(frame)
            if isinstance(message, SyncMessage):
                self.sync.append(message)
                continue
            assert isinstance(message, AwarenessMessage)
            for entry in decode_awareness(message.payload):
                state = json.loads(entry.state_json) if entry.state_json not in ("", "null") else None
                self.history.append((entry.client_id, state))
                if state is None:
                    self.states.pop(entry.client_id, None)
                else:
                    self.states[entry.client_id] = state

    async def send(self, frame: bytes) -> None:
        await self.ws.write_message(frame, binary=True)

    async def announce(self, *states: tuple[int, dict[str, Any] | str | None]) -> None:
        """One awareness message with a state (a dict, raw JSON text, or None) per client id."""
        self.clock += 1
        entries = [
            AwarenessEntry(cid, self.clock, state if isinstance(state, str) else json.dumps(state))
            for cid, state in states
        ]
        await self.send(awareness_frame(encode_awareness(entries)))

    async def wait_closed(self, timeout: float = 10.0) -> tuple[int | None, str | None]:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code, self.close_reason

    def close(self) -> None:
        self._reader.cancel()
        self.ws.close()

"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_collab.client import RoomClient

from .conftest import read_notebook


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


async def recheck_permissions(server: Any, token: str) -> dict[str, int]:
    """Ask the server to re-check every open connection's access now (as an admin would)."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    response = await AsyncHTTPClient().fetch(
        HTTPRequest(
            f"{server.url}/api/collaboration/permissions/recheck",
            method="POST",
            body="{}",
            headers={"Authorization": f"token {token}"},
        )
    )
    return json.loads(response.body)

"""Deterministic test notebooks and the HTTP session request that finds their room."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from urllib.parse import quote

import nbformat


def make_notebook(cells: int, seed: int = 0) -> nbformat.NotebookNode:
    """`cells` cells, like a working notebook: markdown every fifth cell, code cells of
    3-6 lines, every other code cell with a short stream output."""
    rng = random.Random(seed)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11"}
    for i in range(cells):
        if i % 5 == 0:
            nb.cells.append(
                nbformat.v4.new_markdown_cell(f"## Section {i // 5}\n\nNotes on step {i}, seed {rng.random():.6f}.")
            )
            continue
        lines = [f"x_{i}_{j} = compute({rng.randint(0, 10**6)}, scale={rng.random():.4f})" for j in range(rng.randint(3, 6))]
        cell = nbformat.v4.new_code_cell("\n".join(lines), execution_count=i)
        if i % 2 == 0:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"result {i}: {rng.random():.8f}\n")]
        nb.cells.append(cell)
    return nb


def last_source(cells: int, seed: int = 0) -> str:
    nb = make_notebook(cells, seed)
    return nb.cells[-1].source if nb.cells else ""


def write_notebooks(root: Path, cells: int, count: int, prefix: str) -> list[str]:
    """Write `count` copies of a `cells`-cell notebook (distinct files); returns API paths."""
    root.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(make_notebook(cells))
    paths = []
    for i in range(count):
        name = f"{prefix}-{cells}c-{i:05d}.ipynb"
        (root / name).write_text(text)
        paths.append(name)
    return paths


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

"""Pub/sub messages: presence (awareness) per room and the process-wide control channel.

An awareness message is 32 hex characters of process id, one kind byte and a payload:
`a` carries awareness states (the y-protocols encoding), `?` ("I just opened this room:
send me your states") nothing. A control message is a JSON object `{"op": ..., "from":
process id}`.

Both are read from Redis, so both are checked here before anything acts on them
(`Malformed` otherwise), and the awareness states this process publishes are bounded:
republished every 10 s, one client's 16 MiB state would otherwise travel to every process
again and again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..protocol import SAFE_INTEGER_LIMIT, AwarenessEntry, ProtocolError, decode_awareness, encode_awareness
from .complaints import Malformed

AWARENESS_STATES = b"a"
AWARENESS_HELLO = b"?"
# One client's awareness state as shared with other processes (the socket layer refuses
# larger ones from clients too); a larger local state goes out as its `user` field only.
AWARENESS_STATE_MAX_BYTES = 64 * 1024
# One awareness message; this process splits what it publishes to stay under it.
AWARENESS_MESSAGE_MAX_BYTES = 256 * 1024
CONTROL_MAX_BYTES = 64 * 1024
PROCESS_ID = re.compile(rb"[0-9a-f]{32}")
_ENTRY_OVERHEAD = 24  # varint client id, clock and length of one encoded awareness entry


@dataclass(frozen=True)
class AwarenessMessage:
    process: str
    kind: bytes
    payload: bytes


def parse_awareness(data: Any) -> AwarenessMessage:
    """The message, checked down to each state being a JSON object (or a removal)."""
    if not isinstance(data, bytes):
        raise Malformed("not bytes")
    if len(data) > AWARENESS_MESSAGE_MAX_BYTES:
        raise Malformed(f"{len(data)} bytes, over {AWARENESS_MESSAGE_MAX_BYTES}")
    process, kind, payload = data[:32], data[32:33], data[33:]
    if not PROCESS_ID.fullmatch(process):
        raise Malformed("no process id")
    if kind == AWARENESS_HELLO:
        if payload:
            raise Malformed("a hello with a payload")
    elif kind == AWARENESS_STATES:
        try:
            entries = decode_awareness(payload)
        except ProtocolError as exc:
            raise Malformed(f"awareness update: {exc}") from exc
        for entry in entries:
            _check_entry(entry)
    else:
        raise Malformed(f"unknown kind {kind!r}")
    return AwarenessMessage(process.decode(), kind, payload)


def _check_entry(entry: AwarenessEntry) -> None:
    if entry.client_id >= SAFE_INTEGER_LIMIT or entry.clock >= SAFE_INTEGER_LIMIT:
        raise Malformed("client id or clock over 2**53")
    if entry.state_json in ("", "null"):
        return
    if len(entry.state_json.encode()) > AWARENESS_STATE_MAX_BYTES:
        raise Malformed(f"a state over {AWARENESS_STATE_MAX_BYTES} bytes")
    if not isinstance(_json(entry.state_json), dict):
        raise Malformed("a state that is not a JSON object")


def _json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[...": deep nesting
        raise Malformed("not JSON") from exc


def publishable(payload: bytes, over: Callable[[int, int], None]) -> list[bytes]:
    """Awareness updates to publish for `payload` (local states): a state over the bound
    goes out as its `user` field only (or as a removal), reported through `over(client
    id, bytes)`, and the rest is split into messages under the message bound."""
    if len(payload) <= AWARENESS_STATE_MAX_BYTES:
        return [payload]  # no state in it can be over the bound
    chunks: list[list[AwarenessEntry]] = [[]]
    room = AWARENESS_MESSAGE_MAX_BYTES - 64  # the prefix and the entry count
    for entry in decode_awareness(payload):
        size = len(entry.state_json.encode())
        if size > AWARENESS_STATE_MAX_BYTES:
            over(entry.client_id, size)
            entry = AwarenessEntry(entry.client_id, entry.clock, _user_only(entry.state_json))
            size = len(entry.state_json.encode())
        room -= size + _ENTRY_OVERHEAD
        if room < 0:
            chunks.append([])
            room = AWARENESS_MESSAGE_MAX_BYTES - 64 - size - _ENTRY_OVERHEAD
        chunks[-1].append(entry)
    return [encode_awareness(chunk) for chunk in chunks if chunk]


def _user_only(state_json: str) -> str:
    """The state reduced to who it is (local states are stamped JSON objects); "null"
    (a removal) when even that is over the bound."""
    state = json.loads(state_json)
    user = state.get("user") if isinstance(state, dict) else None
    slim = json.dumps({"user": user}, separators=(",", ":")) if isinstance(user, dict) else "null"
    return slim if len(slim.encode()) <= AWARENESS_STATE_MAX_BYTES else "null"


def parse_control(data: Any) -> dict[str, Any]:
    """A control message: a JSON object with an `op` and the process it came `from`."""
    if not isinstance(data, bytes):
        raise Malformed("not bytes")
    if len(data) > CONTROL_MAX_BYTES:
        raise Malformed(f"{len(data)} bytes, over {CONTROL_MAX_BYTES}")
    body = _json(data)
    if not isinstance(body, dict):
        raise Malformed("not a JSON object")
    origin, op = body.get("from"), body.get("op")
    if not isinstance(origin, str) or not PROCESS_ID.fullmatch(origin.encode()):
        raise Malformed("no process id in 'from'")
    if not isinstance(op, str) or not 0 < len(op) <= 64:
        raise Malformed("no 'op'")
    return body

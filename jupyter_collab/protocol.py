"""The Yjs wire protocol (y-protocols sync + awareness framing), decoded strictly.

pycrdt ships helpers for this, but its string encoder writes character counts where
lib0 writes UTF-8 byte counts, and its decoder trusts its input. A server must do
neither: every frame here is bounds-checked and a bad one raises `ProtocolError`,
so the room never applies half of a malformed message.

This module owns the wire contract: frame types, close codes and the empty
update / state vector. docs/wire-protocol.md writes the contract down.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum


class MessageType(IntEnum):
    """First varint of every frame."""

    SYNC = 0
    AWARENESS = 1
    CUSTOM = 2


class SyncType(IntEnum):
    """Second varint of a SYNC frame."""

    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


class CloseCode(IntEnum):
    """Every WebSocket close code the server sends and the Python client acts on.

    Kept in one place so that server and client cannot drift apart; JupyterLab's
    provider understands 1003, 4400, 4404 and 4500, the rest follow RFC 6455 and the
    conventions of other Yjs servers (docs/wire-protocol.md).
    """

    RELOAD = 1003  # history unknown here (merged) or a change refused, JSON reason: start afresh
    POLICY_VIOLATION = 1008  # over a rate, connection or awareness limit: reconnect, not at once
    TOO_BIG = 1009  # a message or awareness state over a size limit: retrying gives the same
    RESTART = 1012  # the server is shutting down and saves every room: reconnect
    TRY_AGAIN_LATER = 1013  # too slow to read, or the backplane is down: reconnect later, resync
    BAD_REQUEST = 4400  # malformed frame, bad room id, unreadable file: do not retry
    FORBIDDEN = 4403  # no access, or access revoked: do not retry blindly
    NOT_FOUND = 4404  # no such file id, or an awareness-only room not allowed: do not retry
    SERVER_ERROR = 4500  # a bug while handling a message: reconnect


# The encoding of an update that changes nothing (no structs, empty delete set): a client
# answering step 1 with nothing new sends it, and transactions that did nothing yield it.
EMPTY_UPDATE = b"\x00\x00"
# The state vector of a document nothing was written to (no client ids).
EMPTY_STATE_VECTOR = b"\x00"


class ProtocolError(ValueError):
    """A frame that does not follow the protocol; the sender is closed with 4400."""


class OverLimit(ValueError):
    """A well-formed message over a configured limit (e.g. too many awareness client ids);
    the sender is closed with 1008 and nothing of the message is applied."""


class TooBig(OverLimit):
    """A well-formed message with a part over a size limit; the sender is closed with 1009."""


# Largest integer a browser represents exactly (Number.MAX_SAFE_INTEGER + 1): lib0 rounds
# larger client ids, so two of them could collide in every browser of the room.
SAFE_INTEGER_LIMIT = 2**53


class Reader:
    """Reads lib0-encoded values from a byte string, refusing to read past its end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def var_uint(self) -> int:
        value = 0
        shift = 0
        while True:
            if self.pos >= len(self.data):
                raise ProtocolError("truncated varint")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ProtocolError("varint too long")

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        end = self.pos + length
        if end > len(self.data):
            raise ProtocolError("truncated payload")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def var_string(self) -> str:
        try:
            return self.var_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("string is not UTF-8") from exc

    def at_end(self) -> bool:
        return self.pos >= len(self.data)


_ONE_BYTE = [bytes([value]) for value in range(0x80)]  # most lengths, types and keys


def var_uint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes((0x80 | (value & 0x7F), value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def var_bytes(data: bytes) -> bytes:
    return var_uint(len(data)) + data


def var_string(text: str) -> bytes:
    return var_bytes(text.encode("utf-8"))


@dataclass(frozen=True)
class SyncMessage:
    kind: SyncType
    payload: bytes


@dataclass(frozen=True)
class AwarenessMessage:
    payload: bytes


@dataclass(frozen=True)
class SaveRequest:
    """A type 2 (custom) frame from a client: JupyterLab's "save", with a request id the
    reply carries back. No other custom message is accepted."""

    request_id: int


Message = SyncMessage | AwarenessMessage | SaveRequest


def decode_message(frame: bytes) -> Message:
    """Parse one binary frame; raises ProtocolError for anything malformed or unknown."""
    reader = Reader(frame)
    kind = reader.var_uint()
    if kind == MessageType.SYNC:
        sub = reader.var_uint()
        if sub not in (SyncType.STEP1, SyncType.STEP2, SyncType.UPDATE):
            raise ProtocolError(f"unknown sync message type {sub}")
        message: Message = SyncMessage(SyncType(sub), reader.var_bytes())
    elif kind == MessageType.AWARENESS:
        message = AwarenessMessage(reader.var_bytes())
    elif kind == MessageType.CUSTOM:
        action = reader.var_string()
        if action != "save":
            raise ProtocolError(f"unknown custom message {action[:40]!r}")
        message = SaveRequest(reader.var_uint())
    else:
        raise ProtocolError(f"unknown message type {kind}")
    if not reader.at_end():
        raise ProtocolError("trailing bytes after message")
    return message


def sync_frame(kind: SyncType, payload: bytes) -> bytes:
    return bytes([MessageType.SYNC, kind]) + var_bytes(payload)


def awareness_frame(payload: bytes) -> bytes:
    return bytes([MessageType.AWARENESS]) + var_bytes(payload)


def save_request_frame(request_id: int) -> bytes:
    return bytes([MessageType.CUSTOM]) + var_string("save") + var_uint(request_id)


def custom_reply_frame(body: dict) -> bytes:
    """A JSON reply on the custom channel, as jupyter-server-ydoc sends it."""
    return bytes([MessageType.CUSTOM]) + var_string(json.dumps(body))


def decode_server_notice(frame: bytes) -> dict | None:
    """A server's JSON message on the custom channel (save replies, role notices), if
    `frame` is one; clients use this, the server never accepts such frames."""
    reader = Reader(frame)
    try:
        if reader.var_uint() != MessageType.CUSTOM:
            return None
        body = json.loads(reader.var_string())
    except (ProtocolError, ValueError):
        return None
    return body if isinstance(body, dict) else None


# -- JSON notices on the custom channel, and the JSON reasons of a 1003 close --------------
# Their shapes are the contract of docs/wire-protocol.md; server and Python client build and
# read them only through these.

VIEWERS_CANNOT_SAVE = "viewers cannot save"
CLOSE_REASON_MAX_BYTES = 123  # RFC 6455: a close frame's reason fits in 123 bytes


def role_notice(role: str, *, can_edit: bool, can_lock: bool, can_run: bool, locked_cells: list[str]) -> dict:
    """A client's rights, sent on join and on every change of them."""
    return {
        "type": "role",
        "role": role,
        "can_edit": can_edit,
        "can_lock": can_lock,
        "can_run": can_run,
        "locked_cells": locked_cells,
    }


def denied_notice(role: str, reason: str) -> dict:
    """A change or save of the client's was refused (then it is closed to reload, except
    for a viewer's save)."""
    return {"type": "denied", "role": role, "reason": reason}


def save_reply(request_id: int, status: str) -> dict:
    """The answer to a save request: "success", "skipped" or "failed"."""
    return {"type": "save", "responseTo": request_id, "status": status}


def reload_reason(reason: str, message: str) -> str:
    """The JSON reason of a 1003 close, which JupyterLab's provider reads to start afresh:
    `reason` is "permission_denied" or "unknown_session"; `message` is cut to fit."""
    def encoded(text: str) -> str:
        body = {"reason": reason, "reloadable": True, "errorReason": text}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    # Escapes (quotes, control characters) make the JSON longer than the message: cut the
    # message by characters until the whole reason fits.
    text = message.encode()[:CLOSE_REASON_MAX_BYTES].decode(errors="ignore")
    while text and len(encoded(text).encode()) > CLOSE_REASON_MAX_BYTES:
        text = text[:-1]
    return encoded(text)


def refusal_in_reload_reason(close_reason: str | None) -> str | None:
    """The refusal a 1003 close reports (`reload_reason("permission_denied", ...)`), if any:
    None for another reason, or one that is no JSON object."""
    try:
        details = json.loads(close_reason or "{}")
    except ValueError:
        return None
    if isinstance(details, dict) and details.get("reason") == "permission_denied":
        return str(details.get("errorReason") or "change refused")
    return None


def unrelated_histories(ours: dict[int, int], theirs: dict[int, int]) -> bool:
    """Whether two documents' state vectors both have history and share none of it: then
    merging the two CRDT histories would double every cell (a server restarted without
    its history store, or a client of another server)."""
    return bool(ours) and bool(theirs) and not (ours.keys() & theirs.keys())


def decode_state_vector(state: bytes) -> dict[int, int]:
    """Decode a Yjs state vector (client id -> clock); raises ProtocolError if malformed."""
    reader = Reader(state)
    count = reader.var_uint()
    vector = {}
    for _ in range(count):
        client = reader.var_uint()
        vector[client] = reader.var_uint()
    if not reader.at_end():
        raise ProtocolError("trailing bytes after state vector")
    return vector


@dataclass
class AwarenessEntry:
    client_id: int
    clock: int
    state_json: str  # "null" (or empty) means the client left


def decode_awareness(payload: bytes) -> list[AwarenessEntry]:
    reader = Reader(payload)
    count = reader.var_uint()
    entries = []
    for _ in range(count):
        client_id = reader.var_uint()
        clock = reader.var_uint()
        entries.append(AwarenessEntry(client_id, clock, reader.var_string()))
    if not reader.at_end():
        raise ProtocolError("trailing bytes after awareness update")
    return entries


def encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    out = [var_uint(len(entries))]
    for entry in entries:
        out += [var_uint(entry.client_id), var_uint(entry.clock), var_string(entry.state_json)]
    return b"".join(out)

"""A room's snapshot in Redis (`collab:{room}:snapshot`), checked before a room opens from it.

The lease holder writes `{state, id, base, base_hash, written}`: the full document as of
stream id `id`, the content last written to (or read from) disk, its hash, and the hash of
the last write announced. A process opening the room starts from it, so a snapshot that
does not decode must not get that far: its state is refused (the caller removes it, and the
lease holder writes a new one within a second); a bad base only loses the base.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pycrdt import get_state

from .complaints import Complaints, Malformed
from .entries import DIGEST, STREAM_ID


@dataclass(frozen=True)
class Snapshot:
    state: bytes
    id: str
    base: str | None  # JSON of the content on disk
    base_hash: str | None
    written: str | None


def parse_snapshot(fields: dict[bytes, bytes], complaints: Complaints, where: str) -> Snapshot | None:
    """The snapshot in `fields` (HGETALL), None if there is no state. Malformed: its state
    or id is unusable. A bad base, base hash or written hash is reported and left out."""
    state = fields.get(b"state")
    if not state:
        return None
    try:
        get_state(state)  # decodes the whole update
    except ValueError as exc:
        raise Malformed(f"a state that does not decode ({exc})") from exc
    snapshot_id = fields.get(b"id", b"0-0").decode("ascii", "replace")
    if not STREAM_ID.fullmatch(snapshot_id):
        raise Malformed("an invalid stream id")
    base, base_hash = fields.get(b"base"), _digest(fields.get(b"base_hash") or None, complaints, where)
    if base is not None and not _is_json(base):
        complaints.skipped("snapshot base", where, "not JSON")
        base = base_hash = None
    return Snapshot(
        state,
        snapshot_id,
        base.decode() if base is not None else None,
        base_hash,
        _digest(fields.get(b"written"), complaints, where),
    )


def _digest(value: bytes | None, complaints: Complaints, where: str) -> str | None:
    if value is None:
        return None
    if not DIGEST.fullmatch(value):
        complaints.skipped("snapshot hash", where, "not a content hash")
        return None
    return value.decode()


def _is_json(text: bytes) -> bool:
    try:
        json.loads(text.decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False
    return True

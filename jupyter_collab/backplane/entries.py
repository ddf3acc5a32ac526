"""Stream entries: how a room's changes are written to its Redis stream and read back.

An entry is `{o: process, n: its sequence number, t: kind, ...}`:

- `u`: a Yjs update (in `u`); `f`: a process's full state (in `u`, after Redis came back);
- `s`: a state-vector request (`v`: "send me what I lack");
- `w`: the content hash (`c`) the lease holder is about to write or has merged;
- `p`: part `k` of `m` of an update of kind `x` too large for one entry (`u`). An entry is
  at most `ENTRY_MAX_BYTES`, so a large paste or a large document's full state goes out
  in several entries, added in one transaction; readers join the parts. The bound is the
  same on every process (a constant, not a setting): a larger entry is refused on reading.

Every entry read is checked here (`Malformed` otherwise) before anything acts on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pycrdt import get_state, merge_updates

from .complaints import Malformed
from .messages import PROCESS_ID

UPDATE, FULL, REQUEST, WRITTEN, PART = b"u", b"f", b"s", b"w", b"p"
PAYLOAD_FIELD = {UPDATE: b"u", FULL: b"u", PART: b"u", REQUEST: b"v", WRITTEN: b"c"}
ENTRY_MAX_BYTES = 1024 * 1024
ENTRY_OVERHEAD = 256  # bytes of an entry besides its payload (field names, ids, numbers)
MAX_PARTS = 2000  # the stream keeps about 2,000 entries: an update cannot have more parts
NUMBER = re.compile(rb"[0-9]{1,18}")
DIGEST = re.compile(rb"[0-9a-f]{1,128}")
STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


class MissingParts(Exception):
    """Parts of an update were trimmed before this process read them: repair by state
    exchange (not a malformed entry: it happens when a process starts or falls behind)."""


@dataclass(frozen=True)
class Entry:
    origin: str
    sequence: int
    kind: bytes
    payload: bytes  # the update, state vector or content hash
    whole: bytes = b""  # parts: the kind of the whole update (u or f)
    part: int = 0
    parts: int = 1


def stream_id(value: bytes | str) -> tuple[int, int]:
    """A stream id ("ms-seq") as a comparable tuple."""
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def entry_size(fields: dict[bytes, bytes]) -> int:
    return sum(len(key) + len(value) for key, value in fields.items())


def update_entries(kind: bytes, update: bytes) -> list[dict[str, Any]]:
    """The fields of the entries that carry `update` (one, or its parts)."""
    room = ENTRY_MAX_BYTES - ENTRY_OVERHEAD
    if len(update) <= room:
        return [{"t": kind, "u": update}]
    chunks = [update[start : start + room] for start in range(0, len(update), room)]
    return [{"t": PART, "x": kind, "k": i, "m": len(chunks), "u": chunk} for i, chunk in enumerate(chunks)]


def parse_entry(fields: dict[bytes, bytes]) -> Entry:
    """The entry, with its form checked (not yet whether an update decodes)."""
    size = entry_size(fields)
    if size > ENTRY_MAX_BYTES:
        raise Malformed(f"{size} bytes, over the {ENTRY_MAX_BYTES}-byte bound")
    origin = fields.get(b"o", b"")
    if not PROCESS_ID.fullmatch(origin):
        raise Malformed("no process id")
    kind = fields.get(b"t", b"")
    field = PAYLOAD_FIELD.get(kind)
    if field is None:
        raise Malformed(f"unknown kind {kind[:8]!r}")
    payload = fields.get(field)
    if payload is None:
        raise Malformed(f"a {kind.decode()!r} entry without {field.decode()!r}")
    if kind == WRITTEN and not DIGEST.fullmatch(payload):
        raise Malformed("not a content hash")
    entry = Entry(origin.decode(), _number(fields.get(b"n")), kind, payload)
    if kind != PART:
        return entry
    whole, part, parts = fields.get(b"x"), _number(fields.get(b"k")), _number(fields.get(b"m"))
    if whole not in (UPDATE, FULL) or not part < parts <= MAX_PARTS:
        raise Malformed("a part without a valid kind, index or count")
    return replace(entry, whole=whole, part=part, parts=parts)


def _number(value: bytes | None) -> int:
    if value is None or not NUMBER.fullmatch(value):
        raise Malformed("a missing or invalid number")
    return int(value)


class Reassembly:
    """Parts of updates too large for one entry, per process, until the last one arrives.
    The parts of one update are added in one transaction, so they are adjacent."""

    def __init__(self, max_processes: int = 16) -> None:
        self.max_processes = max_processes
        self._partial: dict[str, tuple[Entry, list[bytes]]] = {}

    def add(self, entry: Entry) -> Entry | None:
        """The entry itself; for a part, None until the update is whole, then the whole
        update as one entry. MissingParts: earlier parts of this update, or the last parts
        of the previous one, were not read here (the new update is kept)."""
        if entry.kind != PART:
            return entry
        pending = self._partial.pop(entry.origin, None)
        if entry.part == 0:
            self._keep(entry, [entry.payload])
            if pending is not None:
                raise MissingParts("the last parts of an update")
            return None
        first, chunks = pending if pending is not None else (None, [])
        if first is None or (first.whole, first.parts, len(chunks)) != (entry.whole, entry.parts, entry.part):
            raise MissingParts("the first parts of an update")
        chunks.append(entry.payload)
        if len(chunks) < entry.parts:
            self._keep(first, chunks)
            return None
        return replace(first, kind=first.whole, payload=b"".join(chunks), whole=b"", part=0, parts=1)

    def _keep(self, first: Entry, chunks: list[bytes]) -> None:
        self._partial[first.origin] = (first, chunks)
        if len(self._partial) > self.max_processes:  # more processes than can be real
            del self._partial[next(iter(self._partial))]


def whole_entries(
    raw: list[tuple[bytes, dict[bytes, bytes]]], skipped: Callable[[Exception], None]
) -> list[Entry]:
    """The valid entries of `raw` (as XRANGE returns them), parts joined into whole updates;
    malformed entries and incomplete updates are left out (malformed ones reported)."""
    parts = Reassembly()
    entries = []
    for _, fields in raw:
        try:
            entry = parts.add(parse_entry(fields))
        except Malformed as exc:
            skipped(exc)
            continue
        except MissingParts:
            continue
        if entry is not None:
            entries.append(entry)
    return entries


def merge_valid(updates: list[bytes], skipped: Callable[[Exception], None]) -> bytes | None:
    """`updates` merged into one; one that does not decode is left out (and reported)
    instead of taking the others down with it. None: not one of them decodes."""
    try:
        return merge_updates(*updates)
    except ValueError:
        pass
    valid = []
    for update in updates:
        try:
            get_state(update)  # decodes the whole update
        except ValueError as exc:
            skipped(Malformed(f"an update that does not decode ({exc})"))
            continue
        valid.append(update)
    return merge_updates(*valid) if valid else None

"""Server-side awareness table: who is in a room, which client ids each connection owns.

Awareness (presence, cursors) is relayed, with two exceptions that stop anyone posing as
someone else: the first connection to announce a client id owns it, and nobody else may
overwrite or remove that id's state; and the `user` field of every state is replaced by the
identity the server authenticated for that connection (name, initials, colour, role).
When a connection leaves, its states are removed for everyone.

Every awareness frame a client sends is refused as a whole (nothing of it applied) when it
would take its connection over `AwarenessLimits`: more client ids than a front end uses, a
state larger than presence needs, or a client id no browser can represent. Those bounds
also bound the join snapshot and every relayed frame.

Keys of `user` other than the identity are the client's own description of itself (e.g.
jupyter-nbmodel-client's `agent`, our Python client's `program` and `program_name`); the
server lists them in `user.self_declared`, so that a front end can tell a human claiming
`program: true` from a program the server itself shows (a REST caller, whose `user` has
no `self_declared`).

With a backplane (several processes), states announced on other processes arrive through
it (`apply_remote`): they are owned by a `RemoteOrigin`, shown to local clients as they are,
and never sent back; `track_local` makes the table keep the local changes apart so that
only those are published.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..protocol import (
    SAFE_INTEGER_LIMIT,
    AwarenessEntry,
    OverLimit,
    ProtocolError,
    TooBig,
    decode_awareness,
    encode_awareness,
)

SELF_DECLARED = "self_declared"  # server-owned key of `user`: the keys the client set itself

# Edits a client's parsed state in place before it is stored (awareness-only rooms shape
# the document names in it); called with the owning connection.
Shaper = Callable[[Any, dict[str, Any]], None]


@dataclass(frozen=True)
class AwarenessLimits:
    """What one connection may announce (`c.CollabApp.max_awareness_*`)."""

    max_clients: int = 4  # client ids per connection: JupyterLab uses one per tab and document
    max_state_bytes: int = 65536  # UTF-8 bytes of one state's JSON, as the client sent it


def _parsed(state_json: str) -> dict[str, Any]:
    try:
        state = json.loads(state_json)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError("awareness state is not JSON") from exc
    if not isinstance(state, dict):
        raise ProtocolError("awareness state is not a JSON object")
    return state


def _stamp(state: dict[str, Any], identity: dict[str, Any]) -> str:
    """`state` with the server's identity as its `user` (the client's own extra keys kept,
    and listed in `self_declared`), serialized."""
    claimed = state.get("user")
    extra = (
        {k: v for k, v in claimed.items() if k not in identity and k != SELF_DECLARED}
        if isinstance(claimed, dict)
        else {}
    )
    state["user"] = {**extra, **identity, SELF_DECLARED: sorted(extra)} if extra else dict(identity)
    return json.dumps(state, separators=(",", ":"))


_GONE = ("", "null")  # the state of a client that left


def _gone(entry: AwarenessEntry) -> bool:
    return entry.state_json in _GONE


class RemoteOrigin:
    """Owner of the states announced on another process (one per process id)."""

    def __init__(self, process: str, seen: float) -> None:
        self.process = process
        self.seen = seen  # monotonic time of its last message, to expire a dead process


class AwarenessTable:
    def __init__(self, limits: AwarenessLimits | None = None) -> None:
        self.limits = limits or AwarenessLimits()
        self.shape: Shaper | None = None
        self.entries: dict[int, AwarenessEntry] = {}
        self.owners: dict[int, Any] = {}
        self._owned: Counter[Any] = Counter()  # client ids per owner, for the per-connection cap
        self._changed: dict[int, AwarenessEntry] = {}
        self.track_local = False  # set by a backplane: keep local changes apart to publish them
        self._local_changed: dict[int, AwarenessEntry] = {}
        self._remotes: dict[str, RemoteOrigin] = {}

    def _note(self, client_id: int, entry: AwarenessEntry) -> None:
        """Record a change made on this process (not one relayed from another)."""
        self._changed[client_id] = entry
        if self.track_local:
            self._local_changed[client_id] = entry

    def apply(self, owner: Any, payload: bytes, identity: dict[str, Any]) -> bool:
        """Apply an awareness update from `owner`, stamping `identity` as its `user`;
        returns whether anything changed.

        Raises ProtocolError on a malformed payload, OverLimit when it would take `owner`
        over `limits.max_clients` client ids, TooBig for a state over
        `limits.max_state_bytes`; nothing is applied then.
        """
        entries = decode_awareness(payload)
        limits = self.limits
        measure = len(payload) > limits.max_state_bytes  # else no state in it can be too big
        for entry in entries:  # validate everything before changing anything
            if entry.client_id >= SAFE_INTEGER_LIMIT:
                raise ProtocolError(f"awareness client id {entry.client_id} is not below 2^53")
            if measure and len(entry.state_json.encode("utf-8")) > limits.max_state_bytes:
                raise TooBig(f"awareness state over {limits.max_state_bytes} bytes")
        if self._claimed(owner, entries) > limits.max_clients:
            raise OverLimit(f"more than {limits.max_clients} awareness client ids on one connection")
        for entry in entries:
            if entry.state_json not in _GONE:
                state = _parsed(entry.state_json)
                if self.shape is not None:
                    self.shape(owner, state)
                entry.state_json = _stamp(state, identity)
        changed = False
        for entry in entries:
            current_owner = self.owners.get(entry.client_id)
            # Somebody else's client id is refused; a client that moved here from another
            # process takes its own id back.
            if current_owner not in (None, owner) and type(current_owner) is not RemoteOrigin:
                continue
            if self._put(entry, owner):
                self._note(entry.client_id, entry)
                changed = True
        return changed

    def _claimed(self, owner: Any, entries: list[AwarenessEntry]) -> int:
        """How many client ids `owner` would hold once `entries` are applied."""
        count = self._owned.get(owner, 0)
        mine: dict[int, bool] = {}
        for entry in entries:
            current = self.owners.get(entry.client_id)
            if current not in (None, owner) and type(current) is not RemoteOrigin:
                continue  # somebody else's: refused below, changes nothing
            held = mine.get(entry.client_id, current is owner)
            holds = not _gone(entry)
            count += holds - held
            mine[entry.client_id] = holds
        return count

    def _put(self, entry: AwarenessEntry, owner: Any) -> bool:
        """Store `entry` (a null state removes it) unless it is stale; returns whether it did."""
        client_id = entry.client_id
        known = self.entries.get(client_id)
        if known is not None and entry.clock < known.clock:
            return False
        previous = self.owners.get(client_id)
        if _gone(entry):
            self.entries.pop(client_id, None)
            if previous is not None:
                del self.owners[client_id]
                self._release(previous)
        else:
            if previous is not owner:
                if previous is not None:
                    self._release(previous)
                self._owned[owner] += 1
            self.owners[client_id] = owner
            self.entries[client_id] = entry
        return True

    def _release(self, owner: Any) -> None:
        """`owner` holds one client id less."""
        self._owned[owner] -= 1
        if self._owned[owner] <= 0:
            del self._owned[owner]

    def apply_remote(self, process: str, payload: bytes, now: float) -> bool:
        """Apply states relayed from another process (already stamped there); states of
        local connections win. Returns whether anything changed."""
        origin = self._remotes.get(process)
        if origin is None:
            origin = self._remotes[process] = RemoteOrigin(process, now)
        origin.seen = now
        changed = False
        for entry in decode_awareness(payload):
            current_owner = self.owners.get(entry.client_id)
            if current_owner is not None and type(current_owner) is not RemoteOrigin:
                continue
            if self._put(entry, origin):
                self._changed[entry.client_id] = entry  # shown here, never published again
                changed = True
        return changed

    def expire_remotes(self, before: float) -> bool:
        """Remove the states of processes not heard from since `before` (they died)."""
        changed = False
        for process, origin in list(self._remotes.items()):
            if origin.seen < before:
                del self._remotes[process]
                changed = self.remove_owner(origin, local=False) or changed
        return changed

    def take_local_changes(self) -> bytes | None:
        """Encoded update of the local changes since the last call (to publish them)."""
        changes, self._local_changed = self._local_changed, {}
        return encode_awareness(list(changes.values())) if changes else None

    def local_snapshot(self) -> bytes | None:
        """Encoded update of every state announced on this process (for other processes)."""
        local = [e for cid, e in self.entries.items() if type(self.owners.get(cid)) is not RemoteOrigin]
        return encode_awareness(local) if local else None

    def set_server_state(self, client_id: int, state: dict[str, Any] | None) -> None:
        """A state the server itself shows (e.g. a REST caller at work); None removes it."""
        known = self.entries.get(client_id)
        clock = known.clock + 1 if known else 1
        entry = AwarenessEntry(client_id, clock, json.dumps(state, separators=(",", ":")))
        previous = self.owners.pop(client_id, None)
        if previous not in (None, self):
            self._release(previous)  # a client had announced the server's own id
        if state is None:
            self.entries.pop(client_id, None)
        else:
            self.entries[client_id] = entry
            self.owners[client_id] = self
        self._note(client_id, entry)

    def server_states(self) -> list[dict[str, Any]]:
        """The states the server itself shows (programs at work)."""
        return [
            json.loads(self.entries[cid].state_json) for cid, owner in self.owners.items() if owner is self
        ]

    def restamp(self, owner: Any, identity: dict[str, Any]) -> bool:
        """Re-stamp the states of `owner` (its role changed); returns whether any changed."""
        changed = False
        for client_id, entry_owner in self.owners.items():
            if entry_owner is owner:
                entry = self.entries[client_id]
                entry.clock += 1
                entry.state_json = _stamp(json.loads(entry.state_json), identity)
                self._note(client_id, entry)
                changed = True
        return changed

    def remove_owner(self, owner: Any, *, local: bool = True) -> bool:
        """Forget every state `owner` announced, telling everyone they left."""
        gone = [cid for cid, o in self.owners.items() if o is owner]
        self._owned.pop(owner, None)
        for client_id in gone:
            entry = self.entries.pop(client_id)
            del self.owners[client_id]
            removal = AwarenessEntry(client_id, entry.clock + 1, "null")
            if local:
                self._note(client_id, removal)
            else:
                self._changed[client_id] = removal
        return bool(gone)

    def take_change_entries(self) -> list[AwarenessEntry]:
        """Everything changed since the last call (latest state per id)."""
        changes, self._changed = list(self._changed.values()), {}
        return changes

    def take_changes(self) -> bytes | None:
        """Encoded update of everything changed since the last call (latest state per id)."""
        if not self._changed:
            return None
        return encode_awareness(self.take_change_entries())

    def snapshot(self) -> bytes | None:
        """Encoded update of every current state, for a client that just joined."""
        if not self.entries:
            return None
        return encode_awareness(list(self.entries.values()))

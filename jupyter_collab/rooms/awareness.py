"""Server-side awareness table: who is in a room, which client ids each connection owns.

Awareness (presence, cursors) is relayed, not interpreted, except for ownership: the first
connection to announce a client id owns it, and nobody else may overwrite or remove that
id's state. When a connection leaves, its states are removed for everyone.
"""

from __future__ import annotations

from typing import Any

from ..protocol import AwarenessEntry, decode_awareness, encode_awareness


class AwarenessTable:
    def __init__(self) -> None:
        self.entries: dict[int, AwarenessEntry] = {}
        self.owners: dict[int, Any] = {}
        self._changed: dict[int, AwarenessEntry] = {}

    def apply(self, owner: Any, payload: bytes) -> bool:
        """Apply an awareness update from `owner`; returns whether anything changed.

        Raises ProtocolError on a malformed payload (nothing is applied then).
        """
        changed = False
        for entry in decode_awareness(payload):
            current_owner = self.owners.get(entry.client_id)
            if current_owner is not None and current_owner is not owner:
                continue  # somebody else's client id: refused
            known = self.entries.get(entry.client_id)
            if known is not None and entry.clock < known.clock:
                continue  # stale
            if entry.state_json in ("", "null"):
                self.owners.pop(entry.client_id, None)
                self.entries.pop(entry.client_id, None)
            else:
                self.owners[entry.client_id] = owner
                self.entries[entry.client_id] = entry
            self._changed[entry.client_id] = entry
            changed = True
        return changed

    def remove_owner(self, owner: Any) -> bool:
        """Forget every state `owner` announced, telling everyone they left."""
        gone = [cid for cid, o in self.owners.items() if o is owner]
        for client_id in gone:
            entry = self.entries.pop(client_id)
            del self.owners[client_id]
            self._changed[client_id] = AwarenessEntry(client_id, entry.clock + 1, "null")
        return bool(gone)

    def take_changes(self) -> bytes | None:
        """Encoded update of everything changed since the last call (latest state per id)."""
        if not self._changed:
            return None
        changes, self._changed = list(self._changed.values()), {}
        return encode_awareness(changes)

    def snapshot(self) -> bytes | None:
        """Encoded update of every current state, for a client that just joined."""
        if not self.entries:
            return None
        return encode_awareness(list(self.entries.values()))

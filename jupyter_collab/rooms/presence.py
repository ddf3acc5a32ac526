"""Awareness-only rooms (JupyterLab's `JupyterLab:globalAwareness`): presence that names
documents, shown to each person without the names of documents they may not open.

JupyterLab and our front end publish there `documents` (the paths each person has open)
and `current` (the one in front). Relayed as they are, they would tell everyone allowed
into the room the names of documents only some may open (`solutions/exam.ipynb`, open by
the teacher, seen by every student). So, in these rooms only:

- **On the way in** the names are shaped: `documents` keeps at most `MAX_DOCUMENTS` names,
  each a string of at most `MAX_NAME_CHARS` characters and two colons (JupyterLab writes
  `path`, `drive:path`, and `widget:drive:path` for `current`); a connection may bring in
  `NEW_NAMES_BURST` names at once that it did not name before, then `NEW_NAMES_PER_MINUTE`
  a minute, and further new names are left out of its state. Opening documents never
  comes near that; it bounds the policy decisions below, whatever a client sends.
- **On the way out** each recipient gets each state with only the names of documents it
  may open: the permission policy, asked through the recipient's connection once per name
  until the next permission re-check. A name is shown only if every reading of it is
  allowed (the whole string, and what follows each colon), so a drive or widget prefix
  never hides a path. States without names go to everyone unchanged, as in any room.

The policy may answer asynchronously, so deliveries go through one ordered queue per room:
a joiner's snapshot and the changes after it arrive in order. Document rooms do none of
this: their fan-out stays one encoded frame for everyone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from ..protocol import AwarenessEntry, awareness_frame, encode_awareness
from .room import Connection, Room, RoomEvents

MAX_DOCUMENTS = 50
MAX_NAME_CHARS = 512
NEW_NAMES_BURST = 64
NEW_NAMES_PER_MINUTE = 32
NAME_KEYS = ("documents", "current")
_KNOWN_NAMES_CAP = 1024  # names remembered per connection (then forgotten, and new again)
_DECISIONS_CAP = 4096  # policy answers remembered per recipient


def _acceptable(name: Any) -> bool:
    return isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS and name.count(":") <= 2


def readings(name: str) -> list[str]:
    """Every path `name` may stand for: itself, and what follows each of its colons."""
    paths = [name]
    colon = name.find(":")
    while colon != -1:
        paths.append(name[colon + 1 :])
        colon = name.find(":", colon + 1)
    return paths


class NameBudget:
    """The names one connection brought into the room, and how many new ones it may bring
    (a token bucket: `NEW_NAMES_BURST` at once, `NEW_NAMES_PER_MINUTE` a minute)."""

    __slots__ = ("known", "tokens", "stamp")

    def __init__(self) -> None:
        self.known: set[str] = set()
        self.tokens = float(NEW_NAMES_BURST)
        self.stamp = time.monotonic()

    def admit(self, name: str) -> bool:
        if name in self.known:
            return True
        now = time.monotonic()
        self.tokens = min(NEW_NAMES_BURST, self.tokens + (now - self.stamp) * NEW_NAMES_PER_MINUTE / 60)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        if len(self.known) >= _KNOWN_NAMES_CAP:
            self.known.clear()
        self.known.add(name)
        return True


def _named(entry: AwarenessEntry) -> tuple[dict[str, Any], list[str]] | None:
    """The state and the document names it carries, or None when it names none."""
    text = entry.state_json
    if '"documents"' not in text and '"current"' not in text:
        return None  # the common case, decided without parsing
    state = json.loads(text) if text not in ("", "null") else None
    if not isinstance(state, dict):
        return None
    documents = state.get("documents")
    names = [name for name in documents if isinstance(name, str)] if isinstance(documents, list) else []
    if isinstance(state.get("current"), str):
        names.append(state["current"])
    return (state, names) if names else None


class PresenceRoom(Room):
    """An awareness-only room whose states may name documents (see the module docstring)."""

    def __init__(
        self, room_id: str, *, broadcast_window: float, events: RoomEvents, log: logging.Logger
    ) -> None:
        super().__init__(room_id, broadcast_window=broadcast_window, events=events, log=log)
        self.awareness.shape = self._shape
        self._budgets: dict[Connection, NameBudget] = {}
        self._decisions: dict[Connection, dict[str, bool]] = {}
        self._last_delivery: asyncio.Task | None = None

    # -- in --------------------------------------------------------------------------------

    def _shape(self, conn: Connection, state: dict[str, Any]) -> None:
        """Bound the names a client's state carries (the module docstring says how)."""
        if "documents" not in state and "current" not in state:
            return
        budget = self._budgets.get(conn)
        if budget is None:
            budget = self._budgets[conn] = NameBudget()
        if "documents" in state:
            documents = state["documents"] if isinstance(state["documents"], list) else []
            kept: list[str] = []
            for name in documents:
                if len(kept) == MAX_DOCUMENTS:
                    break
                if _acceptable(name) and budget.admit(name):
                    kept.append(name)
            state["documents"] = kept
        if "current" in state:
            current = state["current"]
            state["current"] = current if _acceptable(current) and budget.admit(current) else None

    def leave(self, conn: Connection) -> None:
        super().leave(conn)
        self._budgets.pop(conn, None)
        self._decisions.pop(conn, None)

    def forget_decisions(self) -> None:
        """Rights may have changed (a permission re-check): ask the policy again."""
        self._decisions.clear()

    # -- out -------------------------------------------------------------------------------

    def send_states(self, conn: Connection) -> None:
        entries = list(self.awareness.entries.values())
        if entries:
            self._deliver(entries, [conn])

    def flush(self) -> None:
        entries = self.awareness.take_change_entries()
        super().flush()  # frames queued with `broadcast`, if any
        if entries:
            self._last_flush = asyncio.get_running_loop().time()
            self._deliver(entries, list(self.connections))

    def _deliver(self, entries: list[AwarenessEntry], recipients: list[Connection]) -> None:
        """Send `entries` to `recipients`, each with the names it may see, after every
        earlier delivery of this room."""
        named = {entry.client_id: _named(entry) for entry in entries}
        previous = self._last_delivery
        if previous is None or previous.done():
            if not any(named.values()):  # nothing to filter, nothing to wait for
                frame = awareness_frame(encode_awareness(entries))
                for conn in recipients:
                    conn.send(frame)
                return
            previous = None
        # As they are now: a re-stamp changes entries in place, with a new clock.
        entries = [AwarenessEntry(entry.client_id, entry.clock, entry.state_json) for entry in entries]
        task = asyncio.get_running_loop().create_task(
            self._deliver_after(previous, entries, named, recipients)
        )
        self._last_delivery = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_after(
        self,
        previous: asyncio.Task | None,
        entries: list[AwarenessEntry],
        named: dict[int, tuple[dict[str, Any], list[str]] | None],
        recipients: list[Connection],
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        try:
            for conn in recipients:
                if conn not in self.connections:
                    continue  # left meanwhile
                shown = []
                for entry in entries:
                    found = named[entry.client_id]
                    if found is None or self.awareness.owners.get(entry.client_id) is conn:
                        shown.append(entry)  # no names, or the recipient's own
                        continue
                    state, names = found
                    visible = await self._visible(conn, names)
                    shown.append(AwarenessEntry(entry.client_id, entry.clock, _filtered(state, visible)))
                if conn in self.connections:
                    conn.send(awareness_frame(encode_awareness(shown)))
        except Exception:
            self.log.exception("jupyter_collab: presence delivery failed in room %s", self.room_id)

    async def _visible(self, conn: Connection, names: list[str]) -> set[str]:
        """The names among `names` that `conn`'s user may open (every reading of them)."""
        decisions = self._decisions.get(conn)
        if decisions is None:
            decisions = {}
            if conn in self.connections:
                self._decisions[conn] = decisions
        for name in names:
            for path in readings(name):
                if path not in decisions:
                    if len(decisions) >= _DECISIONS_CAP:
                        decisions.clear()
                    decisions[path] = await self._may_open(conn, path)
        return {name for name in names if all(decisions.get(path) for path in readings(name))}

    async def _may_open(self, conn: Connection, path: str) -> bool:
        try:
            return await conn.may_open(path)
        except Exception:
            self.log.exception("jupyter_collab: the permission policy failed on %r", path)
            return False


def _filtered(state: dict[str, Any], visible: set[str]) -> str:
    """`state` with only the `visible` document names, serialized."""
    shown = dict(state)
    if isinstance(state.get("documents"), list):
        shown["documents"] = [name for name in state["documents"] if name in visible]
    if "current" in state:
        current = state["current"]
        shown["current"] = current if isinstance(current, str) and current in visible else None
    return json.dumps(shown, separators=(",", ":"))

"""The seam between a document room and replication (the same room on other processes).

Small typed Protocols, as pycrdt-websocket types its transport: a room talks to a `Replica`
(publish a change, flush presence, may this process write the file, what did the writer
write), and a replica talks back to a `ReplicatedRoom` (apply the others' changes, hand
over the state they lack, take the save over). A backplane (`backplane/`) implements one
side and types against the other here; it never imports the room, and the room holds no
scale-out code: with one process it keeps `UNREPLICATED`, whose every answer is the
single-process one (Hocuspocus's rule: the core document knows nothing of scale-out).

Opening goes through the same seam: the room manager asks the backplane to `claim` a room
(where it starts from, and whether this process took its save lease), loads the room
itself, then hands it to the claim to `attach`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..persistence.store import StoredDocument


@dataclass(frozen=True)
class Start:
    """Where a room starts from, as replication sees it."""

    shared: StoredDocument | None = None  # the state other processes hold (first; local history adds)
    owner: bool = True  # this process holds the save lease: it merges a file that changed
    source: str | None = None  # how the log names it ("the shared state"); None: the file or history


class WriteLease(Protocol):
    """What a room's file binding needs: whether this process writes the file, and what the
    writer (maybe another process) wrote, so that nobody merges a write as a change."""

    def writes_file(self) -> bool:
        """Does this process hold the save lease now (else it follows the holder's writes)?"""

    async def may_write(self) -> bool:
        """Right before a write: does this process still hold the lease (renewing it)?"""

    async def announce(self, digest: str) -> None:
        """The writer is about to write (or has merged) content with this hash."""

    def was_written(self, digest: str) -> bool:
        """Did a writer announce content with this hash?"""


class Replica(WriteLease, Protocol):
    """What a document room needs from replication."""

    def publish(self, update: bytes) -> None:
        """A local change to the document: send it to the others (at the next flush)."""

    def flush(self, awareness: bytes | None) -> None:
        """The room flushes its broadcasts: send the queued changes and local presence."""

    async def close(self) -> None:
        """The room closes on this process: finish sending, leave the state behind."""


class ReplicatedRoom(Protocol):
    """What a replica may call on its room."""

    room_id: str

    def attach(self, replica: Replica) -> None:
        """From now on, publish through `replica` and ask it before writing the file."""

    def state_vector(self) -> bytes:
        """What the document holds (a Yjs state vector)."""

    def update_since(self, state_vector: bytes | None = None) -> bytes:
        """What the document holds beyond `state_vector` (all of it when None)."""

    def apply_remote(self, update: bytes) -> None:
        """Apply another process's change (it is not published again)."""

    def apply_remote_awareness(self, process: str, payload: bytes, now: float) -> None:
        """Show another process's presence states to local clients."""

    def expire_remote_awareness(self, before: float) -> None:
        """Forget the presence of processes silent since `before`."""

    def local_awareness(self) -> bytes | None:
        """Every presence state announced on this process (for the others)."""

    def take_over(self) -> None:
        """The save lease came to this process: save soon."""

    def disk_announced(self) -> None:
        """The writer wrote or merged the file: follow it."""

    def base_snapshot(self) -> tuple[str, str]:
        """The content last written to or read from disk (JSON) and its file hash ("" if none)."""


class Claim(Protocol):
    """A room about to be loaded on this process, as the backplane prepared it."""

    @property
    def start(self) -> Start: ...

    async def attach(self, room: ReplicatedRoom) -> None:
        """The room is loaded: link it to the same room on other processes."""

    async def abandon(self) -> None:
        """Loading failed: give back what was taken for it (the save lease)."""


class Replication(Protocol):
    """What the room manager needs from a backplane."""

    async def claim(self, room_id: str) -> Claim:
        """Prepare to load `room_id` here (BackplaneUnavailable when that cannot be done)."""


class Unreplicated:
    """The replica of a room no other process holds: nothing to send, this process writes."""

    def writes_file(self) -> bool:
        return True

    async def may_write(self) -> bool:
        return True

    async def announce(self, digest: str) -> None:
        pass

    def was_written(self, digest: str) -> bool:
        return False

    def publish(self, update: bytes) -> None:
        pass

    def flush(self, awareness: bytes | None) -> None:
        pass

    async def close(self) -> None:
        pass


UNREPLICATED = Unreplicated()

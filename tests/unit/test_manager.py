"""The room manager opening a document room, offline: a room that fails to open leaves
nothing behind (not the save lease, which other processes would wait on until it expires,
nor the history store's hold on it, which would keep snapshotting a dead document)."""

from __future__ import annotations

import pytest

from jupyter_collab.documents.kinds import RoomKey
from jupyter_collab.persistence.files import FileContent, FileStat
from jupyter_collab.persistence.store import HistoryStore
from jupyter_collab.persistence.watcher import FileWatcher
from jupyter_collab.rooms.disk import SaveSettings
from jupyter_collab.rooms.manager import RoomManager
from jupyter_collab.rooms.replica import ReplicatedRoom, Start

from .fakes import LOG, Events

KEY = RoomKey("text", "file", "file-1")


class TextFile:
    path = "notes.txt"

    def stat(self) -> FileStat:
        return FileStat(1, 5)

    async def read(self) -> FileContent:
        return FileContent("hello", "disk-hash")


class RefusingClaim:
    """A claim whose attach fails (a replication error after the room was loaded)."""

    start = Start()

    def __init__(self) -> None:
        self.abandoned = False

    async def attach(self, room: ReplicatedRoom) -> None:
        raise ConnectionError("the backplane went away")

    async def abandon(self) -> None:
        self.abandoned = True


class OneClaimBackplane:
    def __init__(self, claim: RefusingClaim) -> None:
        self.claim_given = claim

    async def claim(self, room_id: str) -> RefusingClaim:
        return self.claim_given


async def test_a_room_that_fails_to_attach_releases_its_claim_and_its_history(tmp_path):
    claim = RefusingClaim()
    store = HistoryStore(tmp_path / "h.sqlite")
    manager = RoomManager(
        make_file=lambda key: TextFile(),
        store=store,
        watcher=FileWatcher(0, LOG),
        save=SaveSettings(),
        broadcast_window=0.0,
        close_delay=0.0,
        events=Events(),
        log=LOG,
        backplane=OneClaimBackplane(claim),
    )
    with pytest.raises(ConnectionError):
        await manager.get(KEY.room_id)
    assert claim.abandoned
    assert KEY.room_id not in store._snapshotters
    assert KEY.room_id not in manager.rooms
    await store.stop()

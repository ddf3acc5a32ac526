"""A room's file binding and its loading, offline (milliseconds): an in-memory file, a fake
save lease, a text document."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_collab.documents.kinds import RoomKey, content_hash
from jupyter_collab.persistence.files import FileContent, FileStat
from jupyter_collab.rooms.disk import FileBinding, SaveSettings
from jupyter_collab.rooms.loading import Plan, load_document, reconcile
from jupyter_collab.rooms.replica import Start

from .fakes import LOG

KEY = RoomKey("text", "file", "file-1")


class MemoryFile:
    """A file held in memory; `edit` changes it behind the room's back."""

    path = "notes.txt"

    def __init__(self, text: str) -> None:
        self.text = text
        self.version = 1
        self.writes: list[str] = []

    def stat(self) -> FileStat:
        return FileStat(self.version, len(self.text))

    async def read(self) -> FileContent:
        return FileContent(self.text, f"disk:{self.text}")

    async def write(self, content: Any) -> str:
        self.writes.append(content)
        self.edit(content)
        return f"disk:{content}"

    def edit(self, text: str) -> None:
        self.text = text
        self.version += 1


class FakeLease:
    """A save lease whose answers the test sets."""

    def __init__(self, *, writer: bool = True) -> None:
        self.writer = writer
        self.announced: list[str] = []
        self.written: set[str] = set()

    def writes_file(self) -> bool:
        return self.writer

    async def may_write(self) -> bool:
        return self.writer

    async def announce(self, digest: str) -> None:
        self.announced.append(digest)

    def was_written(self, digest: str) -> bool:
        return digest in self.written


async def bound(text: str, lease: FakeLease | None = None) -> tuple[FileBinding, MemoryFile]:
    file = MemoryFile(text)
    loaded = await load_document(KEY, file, None, Start(), LOG)
    binding = FileBinding(KEY.room_id, file, loaded, store=None, settings=SaveSettings(), log=LOG)
    if lease is not None:
        binding.lease = lease
    return binding, file


def type_text(binding: FileBinding, at: int, text: str) -> None:
    with binding.document.ydoc.transaction():
        binding.document.model._ysource.insert(at, text)


@pytest.mark.parametrize(
    ("stored", "base_known", "disk_is_base", "owner", "plan", "takes_disk"),
    [
        (False, False, False, False, Plan.FILE, True),
        (True, True, True, False, Plan.STORED, True),
        (True, True, False, False, Plan.FOLLOW, False),
        (True, True, False, True, Plan.MERGE, True),
        (True, False, True, False, Plan.MERGE, True),
        (True, False, False, False, Plan.MERGE, False),
    ],
)
def test_loading_decision(stored, base_known, disk_is_base, owner, plan, takes_disk):
    decision = reconcile(stored=stored, base_known=base_known, disk_is_base=disk_is_base, owner=owner)
    assert (decision.plan, decision.takes_disk) == (plan, takes_disk)


async def test_a_room_without_history_starts_from_its_file():
    file = MemoryFile("hello")
    loaded = await load_document(KEY, file, None, Start(), LOG)
    assert (loaded.base, loaded.disk_hash, loaded.source) == ("hello", "disk:hello", "file")
    assert not loaded.unsaved
    assert loaded.document.content() == "hello"


async def test_save_writes_a_change_once():
    binding, file = await bound("hello")
    type_text(binding, 5, " world")
    assert await binding.save() == "success"
    assert await binding.save() == "skipped"
    assert file.writes == ["hello world"]
    assert (binding.base, binding.disk_hash) == ("hello world", "disk:hello world")
    assert not binding.changed_on_disk()


async def test_a_process_without_the_lease_does_not_write():
    binding, file = await bound("hello", FakeLease(writer=False))
    type_text(binding, 0, "> ")
    assert await binding.save() == "skipped"
    assert file.writes == []


async def test_the_writer_merges_a_change_on_disk_and_announces_it():
    lease = FakeLease()
    binding, file = await bound("one\ntwo\n", lease)
    type_text(binding, 0, "zero\n")
    file.edit("one\ntwo\nthree\n")
    assert binding.changed_on_disk()
    await binding.check()
    assert binding.document.content() == "zero\none\ntwo\nthree\n"
    assert binding.base == "one\ntwo\nthree\n"
    assert len(lease.announced) == 1


async def test_a_follower_adopts_an_announced_write_without_merging():
    lease = FakeLease(writer=False)
    binding, file = await bound("one\n", lease)
    file.edit("unannounced\n")
    await binding.check()
    assert binding.base == "one\n" and binding.changed_on_disk()  # the holder's to merge
    written = "written by the holder\n"
    lease.written.add(content_hash(written))
    file.edit(written)
    await binding.check()
    assert binding.base == written and not binding.changed_on_disk()
    assert binding.document.content() == "one\n"  # the holder's change arrives through the replica


async def test_the_writer_takes_a_predecessors_announced_write_as_its_base():
    lease = FakeLease()
    binding, file = await bound("one\n", lease)
    written = "a killed holder's last write\n"
    lease.written.add(content_hash(written))
    file.edit(written)
    await binding.check()
    assert binding.base == written
    assert binding.document.content() == "one\n"  # not merged again: it is in the shared state

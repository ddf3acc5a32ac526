"""Presence that names documents (the global awareness room), offline: each recipient sees
only the names of documents it may open, and a client's names are bounded on the way in."""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_collab.rooms.presence import MAX_DOCUMENTS, MAX_NAME_CHARS, PresenceRoom

from .fakes import LOG, Events, FakeConnection, presence


def not_secret(path: str) -> bool:
    return not path.startswith("secret/")


async def settle() -> None:
    """Let the room's ordered delivery tasks run (the fake policy answers at once)."""
    await asyncio.sleep(0.01)


async def room_with(teacher_state: dict[str, Any]) -> tuple[PresenceRoom, FakeConnection, FakeConnection]:
    """A teacher who may open everything announces `teacher_state`; a student may not open
    secret/."""
    room = PresenceRoom("awareness:global", broadcast_window=0.0, events=Events(), log=LOG)
    teacher = FakeConnection(room, "teacher")
    student = FakeConnection(room, "student", readable=not_secret)
    room.join(teacher)
    room.join(student)
    room.handle(teacher, presence(1, teacher_state))
    await settle()
    return room, teacher, student


async def test_each_recipient_sees_only_the_documents_it_may_open():
    state = {"documents": ["public.ipynb", "secret/exam.ipynb"], "current": "secret/exam.ipynb"}
    _, teacher, student = await room_with(state)
    assert student.states()[1]["documents"] == ["public.ipynb"]
    assert student.states()[1]["current"] is None
    mine = teacher.states()[1]
    assert (mine["documents"], mine["current"]) == (state["documents"], state["current"])


async def test_a_drive_or_widget_prefix_does_not_hide_a_path():
    # The whole string is allowed by a policy that only looks at prefixes; what follows a
    # colon is not, so the name is hidden.
    state = {
        "documents": ["RTC:secret/exam.ipynb", "RTC:public.ipynb"],
        "current": "nb:RTC:secret/exam.ipynb",
    }
    _, _, student = await room_with(state)
    assert student.states()[1]["documents"] == ["RTC:public.ipynb"]
    assert student.states()[1]["current"] is None


async def test_a_joiner_gets_the_filtered_snapshot_too():
    room, _, _ = await room_with({"documents": ["public.ipynb", "secret/a.ipynb"]})
    late = FakeConnection(room, "late", readable=not_secret)
    room.join(late)
    await settle()
    assert late.states()[1]["documents"] == ["public.ipynb"]


async def test_the_policy_is_asked_once_per_name_until_rights_may_have_changed():
    room, teacher, student = await room_with({"documents": ["a.ipynb"]})
    room.handle(teacher, presence(1, {"documents": ["a.ipynb"], "cursor": 2}, clock=2))
    await settle()
    assert student.asked == ["a.ipynb"]
    room.forget_decisions()
    room.handle(teacher, presence(1, {"documents": ["a.ipynb"], "cursor": 3}, clock=3))
    await settle()
    assert student.asked == ["a.ipynb", "a.ipynb"]


async def test_states_without_document_names_go_to_everyone_without_asking_the_policy():
    _, _, student = await room_with({"cursor": 5})
    assert student.states()[1]["cursor"] == 5
    assert student.asked == []


async def test_names_are_bounded_on_the_way_in():
    too_long = "x" * (MAX_NAME_CHARS + 1)
    names = [too_long, "a:b:c:d", 42, *[f"nb{i}.ipynb" for i in range(MAX_DOCUMENTS + 5)]]
    _, teacher, _ = await room_with({"documents": names, "current": too_long})
    mine = teacher.states()[1]
    assert mine["documents"] == [f"nb{i}.ipynb" for i in range(MAX_DOCUMENTS)]
    assert mine["current"] is None

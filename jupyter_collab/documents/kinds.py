"""Document kinds: which shared model backs a room, and how content goes in and out of it.

Room ids follow the JupyterLab convention `{format}:{type}:{fileId}`; notebooks use
jupyter-ydoc's `YNotebook` (schema 2.0.0), text files `YUnicode`, binary files `YBlob`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from jupyter_ydoc import YBlob, YNotebook, YUnicode
from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import Doc

from ..protocol import EMPTY_STATE_VECTOR
from .encode import Unsupported, encode_notebook
from .merge import merge_notebook, merge_text, notebook_snapshot

# (format, type) pairs we serve, and the shared model for each.
DOCUMENT_KINDS: dict[tuple[str, str], type[YBaseDoc]] = {
    ("json", "notebook"): YNotebook,
    ("text", "file"): YUnicode,
    ("base64", "file"): YBlob,
}

_FILE_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


def content_hash(content: Any) -> str:
    """A hash of document content that ignores formatting (key order, indentation)."""
    text = content if isinstance(content, str) else json.dumps(content, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class BadRoomId(ValueError):
    """The room id does not name a document kind and file id we serve."""


@dataclass(frozen=True)
class RoomKey:
    format: str
    type: str
    file_id: str

    @property
    def room_id(self) -> str:
        return f"{self.format}:{self.type}:{self.file_id}"


def parse_room_id(room_id: str) -> RoomKey | None:
    """A document room's key; None for awareness-only rooms (fewer than two colons).

    Raises BadRoomId when it looks like a document room but is not one we can serve.
    """
    if room_id.count(":") < 2:
        return None
    file_format, file_type, file_id = room_id.split(":", 2)
    if (file_format, file_type) not in DOCUMENT_KINDS:
        raise BadRoomId(f"unsupported document kind {file_format}:{file_type}")
    if not _FILE_ID.match(file_id):
        raise BadRoomId("malformed file id")
    return RoomKey(file_format, file_type, file_id)


def fill(model: YBaseDoc, content: Any) -> None:
    """Set a model's content; an empty notebook is filled with one encoded update, which
    is several times faster than `YNotebook.set` (see documents/encode.py)."""
    if isinstance(model, YNotebook) and model.ydoc.get_state() == EMPTY_STATE_VECTOR:
        try:
            update = encode_notebook(content, client=model.ydoc.client_id)
        except Unsupported:
            pass  # YNotebook.set knows what to do with it, or says what is wrong
        else:
            model.ydoc.apply_update(update)
            return
    model.set(content)


def _has_unique_cell_ids(content: Any) -> bool:
    cells = content.get("cells") if isinstance(content, dict) else None
    if not isinstance(cells, list):
        return False
    ids = [cell.get("id") for cell in cells if isinstance(cell, dict)]
    return None not in ids and len(set(ids)) == len(cells)


class SharedDocument:
    """A jupyter-ydoc model plus the content conversions persistence needs."""

    def __init__(self, key: RoomKey) -> None:
        self.kind = DOCUMENT_KINDS[(key.format, key.type)]
        self.ydoc = Doc()
        self.model: YBaseDoc = self.kind(self.ydoc)
        # The document's state right after it was set from content whose cell ids are
        # unique: as long as it has not changed, there is nothing to deduplicate.
        self._unique_ids_state: bytes | None = None

    def content(self) -> Any:
        """Current content; notebook cells always carry their ids (for merging)."""
        if isinstance(self.model, YNotebook):
            return notebook_snapshot(self.model)
        return self.model.get()

    def file_content(self) -> Any:
        """Current content as it is written to disk."""
        return self.model.get()

    def set(self, content: Any) -> None:
        fill(self.model, content)
        unique = isinstance(self.model, YNotebook) and _has_unique_cell_ids(content)
        self._unique_ids_state = self.ydoc.get_state() if unique else None

    def normalize(self, content: Any) -> Any:
        """File content in the form `content()` returns (defaults that loading adds)."""
        scratch = self.kind(Doc())
        fill(scratch, content)
        if isinstance(scratch, YNotebook):
            return notebook_snapshot(scratch)
        return scratch.get()

    def merge(self, base: Any, incoming: Any, *, apply_deletions: bool = True) -> bool:
        """Merge `incoming` (changes against `base`) into the live document."""
        if isinstance(self.model, YNotebook):
            return merge_notebook(self.model, base, incoming, apply_deletions=apply_deletions)
        if isinstance(self.model, YUnicode):
            return merge_text(self.model, base, incoming)
        if incoming != self.model.get():
            self.model.set(incoming)
            return True
        return False

    def observe_cell_inserts(self, callback: Any) -> None:
        """Call `callback()` after a transaction that inserted notebook cells."""
        if isinstance(self.model, YNotebook):
            self.model.ycells.observe(
                lambda event: callback() if any("insert" in d for d in event.delta) else None
            )

    def remove_duplicate_cells(self) -> list[str]:
        """Delete all but the first cell of each id; returns the ids that were duplicated.

        Concurrent moves of one cell (JupyterLab moves by delete + re-insert, yjs 13.5 has
        no move) leave one copy per mover once merged: the document would otherwise keep
        them all, the well-known "duplicated cells" bug.
        """
        if not isinstance(self.model, YNotebook):
            return []
        if self._unique_ids_state is not None and self.ydoc.get_state() == self._unique_ids_state:
            return []
        ycells = self.model.ycells
        # The ids in one read of the cells as JSON: asking each cell for its id crosses into
        # the CRDT library per cell (75 ms for 2,000 cells), and this runs after every
        # transaction that inserts cells.
        first: dict[str, int] = {}
        extra: list[int] = []
        for index, cell in enumerate(json.loads(str(ycells))):
            cell_id = cell.get("id")
            if cell_id in first:
                extra.append(index)
            else:
                first[cell_id] = index
        if not extra:
            return []
        duplicates = [ycells[index].get("id") for index in extra]
        with self.ydoc.transaction(origin="dedupe"):
            for index in reversed(extra):
                del ycells[index]
        return duplicates

    def foreign_content(self, update: bytes) -> Any:
        """Content of a document made only of `update` (a client's unrelated history)."""
        scratch_doc = Doc()
        scratch_doc.apply_update(update)
        scratch = self.kind(scratch_doc)
        if isinstance(scratch, YNotebook):
            return notebook_snapshot(scratch)
        return scratch.get()

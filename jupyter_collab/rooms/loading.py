"""Loading a document room: reconcile its history (stored here, or shared by other
processes) with the file on disk.

The decision is a pure function (`reconcile`) of four facts: is anything stored, is its
base known, is the file on disk the base it was last saved as, and does this process hold
the save lease. `load_document` gathers the facts, applies the decision and opens the
history store; the room is then made from what it returns.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pycrdt import get_state, merge_updates

from ..documents.kinds import RoomKey, SharedDocument, content_hash
from ..persistence.files import DocumentFile, FileStat
from ..persistence.store import HistoryStore, StoredDocument
from ..protocol import decode_state_vector
from .replica import Start


class Plan(Enum):
    FILE = "file"  # nothing stored: the file is the document
    STORED = "stored"  # the file is what was last written: the stored state is newer or equal
    FOLLOW = "follow"  # the file changed, but the lease holder merges it: keep the stored base
    MERGE = "merge"  # the file changed while no server watched it: merge it into the stored state


@dataclass(frozen=True)
class Decision:
    plan: Plan
    takes_disk: bool  # the file's hash and stat become the room's (else the holder's writes are followed)


def reconcile(*, stored: bool, base_known: bool, disk_is_base: bool, owner: bool) -> Decision:
    """How to load a room. Only the `owner` of the save lease merges a file that changed
    behind the stored state; the others keep the stored base and follow what it writes."""
    if not stored:
        plan = Plan.FILE
    elif disk_is_base and base_known:
        plan = Plan.STORED
    elif not owner and base_known:
        plan = Plan.FOLLOW
    else:
        plan = Plan.MERGE
    return Decision(plan, owner or plan is Plan.FILE or disk_is_base)


@dataclass
class Loaded:
    """A document as loaded, and how it stands with its file."""

    document: SharedDocument
    base: Any  # the content on disk, in document form
    disk_hash: str | None  # hash of the bytes on disk
    disk_stat: FileStat | None
    unsaved: bool  # the history held edits the file did not
    source: str  # for the log: "file", "history" or what replication calls it


async def load_document(
    key: RoomKey, file: DocumentFile, store: HistoryStore | None, start: Start, log: logging.Logger
) -> Loaded:
    """Fill a document from the history and the file (the file wins on conflict).

    `start.shared` is the state other processes hold: it comes first, and the local history
    adds to it only when it is of the same lineage.
    """
    on_disk = await file.read()
    stored = await store.load(key.room_id) if store else None
    if start.shared is not None:
        stored = _with_local_history(start.shared, stored)
    document = SharedDocument(key)
    stored_base: Any = None
    current: Any = None
    if stored is not None:
        try:
            document.ydoc.apply_update(stored.state)
            stored_base = json.loads(stored.base) if stored.base else None
            current = document.content()  # must be readable as its kind
        except Exception as exc:
            log.warning("jupyter_collab: history of %s unusable (%s); using the file", key.room_id, exc)
            if store:
                await store.forget(key.room_id)
            document = SharedDocument(key)
            stored = None
    source = start.source or ("file" if stored is None else "history")
    decision = reconcile(
        stored=stored is not None,
        base_known=stored_base is not None,
        disk_is_base=stored is not None and on_disk.disk_hash == stored.base_hash,
        owner=start.owner,
    )
    # Reading a large notebook back is costly (cold joins): read it once per path.
    unsaved = False
    if decision.plan is Plan.FILE:
        document.set(on_disk.content)
        base = document.content()
    elif decision.plan is Plan.STORED:
        base = stored_base
        unsaved = content_hash(current) != content_hash(base)
    elif decision.plan is Plan.FOLLOW:
        base = stored_base
    else:
        incoming = document.normalize(on_disk.content)
        document.merge(stored_base if stored_base is not None else incoming, incoming)
        base = incoming
        unsaved = True
        log.info("jupyter_collab: %s changed on disk while the server was away; merged", file.path)
    disk_hash = on_disk.disk_hash if decision.takes_disk else stored.base_hash
    disk_stat = file.stat() if decision.takes_disk else None
    if store:
        store.open(key.room_id, document.ydoc.get_update)
        if stored is None:
            store.replace(key.room_id, document.ydoc.get_update())
        store.set_base(key.room_id, json.dumps(base), disk_hash)
    return Loaded(document, base, disk_hash, disk_stat, unsaved, source)


def _with_local_history(shared: StoredDocument, local: StoredDocument | None) -> StoredDocument:
    """The shared state plus this process's own history when both share a lineage (it may
    hold edits made while the backplane was away); an unrelated local history (from before
    this process joined the cluster) is ignored: merging it would double every cell."""
    if local is None:
        return shared
    theirs = decode_state_vector(get_state(shared.state))
    ours = decode_state_vector(get_state(local.state))
    if theirs and not (theirs.keys() & ours.keys()):
        return shared
    return StoredDocument(merge_updates(shared.state, local.state), shared.base, shared.base_hash)

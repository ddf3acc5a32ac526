"""A Python collaborator for programs (scripts, agents) and tests.

- `room`: `RoomClient`, one WebSocket connection to a room speaking the Yjs protocol;
- `notebook`: `NotebookClient`, a named collaborator editing a notebook by cell id;
- `sync`: `SyncNotebookClient`, the same for blocking scripts;
- `changes`: the errors they raise and `Change`, what changed by cell id.
"""

from ..documents.cells import CellConflict, CellError, CellNotFound
from .changes import AccessDenied, CellLocked, Change, ChangeRefused, ClientClosedError, ReadOnlyError
from .notebook import ChangeStream, NotebookClient
from .room import RoomClient, RoomClosed, open_session, room_url
from .sync import SyncChangeStream, SyncNotebookClient

__all__ = [
    "AccessDenied",
    "CellConflict",
    "CellError",
    "CellLocked",
    "CellNotFound",
    "Change",
    "ChangeRefused",
    "ChangeStream",
    "ClientClosedError",
    "NotebookClient",
    "ReadOnlyError",
    "RoomClient",
    "RoomClosed",
    "SyncChangeStream",
    "SyncNotebookClient",
    "open_session",
    "room_url",
]


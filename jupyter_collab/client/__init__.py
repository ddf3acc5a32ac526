"""A Python collaborator for programs (scripts, agents) and tests.

- `room`: `RoomClient`, one WebSocket connection to a room speaking the Yjs protocol;
- `notebook`: `NotebookClient`, a named collaborator editing a notebook by cell id;
- `supervisor`: keeps its connection up (reconnect, start afresh, what each close code means);
- `feed`: tells its watchers what changed (`ChangeStream`); `changes`: `Change`, by cell id;
- `refusals`: the server's refusals of its changes, raised from `flush()`;
- `sync`: `SyncNotebookClient`, the same for blocking scripts;
- `errors`: the errors they raise.
"""

from ..documents.cells import CellConflict, CellError, CellNotFound
from .changes import Change
from .errors import AccessDenied, CellLocked, ChangeRefused, ClientClosedError, ReadOnlyError
from .feed import ChangeStream
from .notebook import NotebookClient
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

"""The Jupyter server extension: configuration (`c.CollabApp.*`), routes and lifecycle."""

from __future__ import annotations

import uuid
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, Unicode, default

from .documents import RoomKey
from .handlers.room import RoomHandler
from .handlers.session import SessionHandler
from .persistence.filesync import DocumentFile
from .persistence.store import HistoryStore
from .persistence.watcher import FileWatcher
from .rooms.document import SaveSettings
from .rooms.manager import RoomManager


class CollabApp(ExtensionApp):
    """Real-time collaboration for Jupyter: shared documents over the Yjs protocol."""

    name = "jupyter_collab"

    document_save_delay = Float(
        0.5,
        config=True,
        help="Seconds without changes after which a document is saved to disk.",
    )
    max_save_delay = Float(
        1.0,
        config=True,
        help="Upper bound, in seconds, on how stale the file may get during continuous "
        "editing: a save happens at the latest this long after the first unsaved change.",
    )
    room_close_delay = Float(
        60.0,
        config=True,
        help="Seconds a room stays open (in memory) after its last client left.",
    )
    file_poll_interval = Float(
        1.0,
        config=True,
        help="Seconds between checks for files changed on disk behind open rooms "
        "(one shared loop for all rooms). 0 disables out-of-band change detection.",
    )
    broadcast_window = Float(
        0.003,
        config=True,
        help="Seconds during which document updates and awareness changes are collected "
        "and sent as one message to every client. 0 sends once per event-loop turn.",
    )
    history_enabled = Bool(
        True,
        config=True,
        help="Keep each document's CRDT history in an SQLite store, so that clients that "
        "reconnect after a server restart merge without duplicating content.",
    )
    history_path = Unicode(
        config=True,
        help="SQLite file of the history store (default: jupyter_collab/history.sqlite "
        "under Jupyter's data directory).",
    )
    history_flush_interval = Float(
        0.1,
        config=True,
        help="Seconds between batched writes to the history store; at most this much "
        "editing is missing from the history after a crash.",
    )
    history_compact_bytes = Int(
        4_000_000,
        config=True,
        help="When a document's stored updates exceed this many bytes they are replaced "
        "by one snapshot of the live document.",
    )
    history_max_bytes = Int(
        500_000_000,
        config=True,
        help="Size cap of the history store; past it, histories of closed documents are "
        "dropped, least recently used first (their files keep their content).",
    )
    max_message_bytes = Int(
        16 * 1024 * 1024,
        config=True,
        help="Largest WebSocket message accepted from a client; larger ones close the "
        "connection with code 1009.",
    )
    max_send_buffer_bytes = Int(
        8 * 1024 * 1024,
        config=True,
        help="Bytes that may wait to be sent to one client; a client that falls further "
        "behind is closed with code 1013 and resyncs when it reconnects.",
    )

    @default("history_path")
    def _default_history_path(self) -> str:
        return str(Path(jupyter_data_dir()) / "jupyter_collab" / "history.sqlite")

    def initialize_settings(self) -> None:
        self.store = (
            HistoryStore(
                Path(self.history_path),
                flush_interval=self.history_flush_interval,
                compact_bytes=self.history_compact_bytes,
                max_bytes=self.history_max_bytes,
                log=self.log,
            )
            if self.history_enabled
            else None
        )
        # With a history store, a restarted server still knows its clients' histories,
        # so its session id survives restarts; otherwise it is new per process.
        self.session_id = self.store.store_id if self.store else uuid.uuid4().hex
        self.rooms = RoomManager(
            make_file=self._make_file,
            store=self.store,
            watcher=FileWatcher(self.file_poll_interval, self.log),
            save=SaveSettings(self.document_save_delay, self.max_save_delay),
            broadcast_window=self.broadcast_window,
            close_delay=self.room_close_delay,
            log=self.log,
        )
        self.settings["jupyter_collab"] = self

    def _make_file(self, key: RoomKey) -> DocumentFile:
        return DocumentFile(
            self.serverapp.contents_manager,
            self.serverapp.web_app.settings["file_id_manager"],
            key.file_id,
            key.format,
            key.type,
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(
            [
                (r"/api/collaboration/session/(.*)", SessionHandler),
                (r"/api/collaboration/room/(.*)", RoomHandler),
            ]
        )

    async def stop_extension(self) -> None:
        """Server shutdown (SIGTERM, Ctrl-C): save everything, then close the store."""
        await self.rooms.stop()
        if self.store:
            await self.store.stop()

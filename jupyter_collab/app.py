"""The Jupyter server extension: configuration (`c.CollabApp.*`), routes and lifecycle."""

from __future__ import annotations

import asyncio
import gc
import re
import uuid
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Instance, Int, TraitError, Type, Unicode, default, validate

from .audit import AuditTrail
from .backplane import make_backplane
from .documents.kinds import RoomKey
from .enforcement import warn_if_policy_unenforced
from .handlers.permissions import RecheckHandler
from .handlers.rest import REST_HANDLERS
from .handlers.room import RateLimit, RoomHandler
from .handlers.session import SessionHandler
from .permissions import Access, AuthorizerPolicy, PermissionPolicy
from .persistence.files import DocumentFile
from .persistence.store import HistoryStore
from .persistence.watcher import FileWatcher
from .rooms.awareness import AwarenessLimits
from .rooms.disk import SaveSettings
from .rooms.gate import Gate
from .rooms.manager import Limits, RoomManager


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
        help="At most one broadcast per this many seconds: the first change after a quiet "
        "window goes out at once, the changes that follow within the window are collected and "
        "sent as one message to every client at its end. 0 sends once per event-loop turn.",
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
        help="Bytes that may wait in the server to be sent to one client (beyond what its "
        "socket took at once); a frame that would take it over closes the client with code "
        "1013, and the client resyncs when it reconnects. One frame larger than this (a big "
        "document's state) still goes out when nothing else waits.",
    )

    permission_policy_class = Type(
        AuthorizerPolicy,
        klass=PermissionPolicy,
        config=True,
        help="The permission policy: who is owner, editor, viewer or has no access, and which "
        "cells are locked for whom. Built in: AuthorizerPolicy (asks the server's "
        "Authorizer), RulesPolicy (rules per path glob from config).",
    )
    permission_policy = Instance(PermissionPolicy, allow_none=True)
    permission_recheck_interval = Float(
        30.0,
        config=True,
        help="Seconds between re-checks of every open connection's access: a demoted editor "
        "becomes a viewer, a removed user is disconnected. 0 disables the periodic re-check "
        "(POST /api/collaboration/permissions/recheck still works).",
    )
    max_document_messages_per_second = Float(
        200.0,
        config=True,
        help="Average document messages per second one connection may send (0: no limit); "
        "going over closes it with 1008.",
    )
    max_awareness_messages_per_second = Float(
        60.0,
        config=True,
        help="Average awareness (presence, cursor) messages per second one connection may "
        "send (0: no limit); going over closes it with 1008.",
    )
    message_burst = Float(
        400.0,
        config=True,
        help="Messages a connection may send at once above the average rates (bucket size).",
    )
    max_connections_per_user = Int(
        20,
        config=True,
        help="Connections one user may hold to one room (tabs, devices); more are refused with 1008.",
    )
    max_total_connections_per_user = Int(
        100,
        config=True,
        help="Connections one user may hold to all rooms of this server process together "
        "(every open document and the presence room); more are refused with 1008.",
    )
    max_awareness_clients_per_connection = Int(
        4,
        config=True,
        help="Awareness client ids (presence, cursors) one connection may announce: JupyterLab "
        "and jupyter-nbmodel-client use one. An awareness message that would go over it is "
        "refused as a whole and closes the connection with 1008.",
    )
    max_awareness_state_bytes = Int(
        65536,
        config=True,
        help="Largest awareness state one client id may announce (UTF-8 bytes of its JSON). "
        "A larger one is refused with the whole message and closes the connection with 1009. "
        "With max_awareness_clients_per_connection it bounds what a join sends and relays.",
    )
    awareness_rooms = Unicode(
        r"JupyterLab:globalAwareness",
        config=True,
        help="Regular expression (matching the whole name) for the awareness-only rooms "
        "clients may open: rooms named otherwise than {format}:{type}:{fileId}. The default "
        "is JupyterLab's presence room, the only one JupyterLab and our front end use; add "
        "others with e.g. 'JupyterLab:globalAwareness|myext:[a-z0-9-]{1,40}'. Other names "
        "close with 4404, ids over 256 characters with 4400.",
    )
    max_sync_requests_per_minute = Float(
        10.0,
        config=True,
        help="Sync requests (Yjs step 1, each answered with all of the document the client "
        "lacks) one connection may send per minute after its first, in bursts of up to this "
        "many (0: no limit). Clients send one per connection; going over closes it with 1008.",
    )
    max_recheck_requests_per_minute = Float(
        6.0,
        config=True,
        help="POST /api/collaboration/permissions/recheck requests this process accepts per "
        "minute, in bursts of up to this many (0: no limit); more are answered 429. Each "
        "re-checks every connection of every process.",
    )

    backplane_url = Unicode(
        "",
        config=True,
        help="Where server processes that serve the same rooms meet: empty (the default) "
        "for one process; redis://host:port/db to let several processes behind a load "
        "balancer share live rooms through Redis (they must share the root directory and "
        "the file-id database). See 'Scale-out with Redis' in the README.",
    )
    backplane_stream_max_bytes = Int(
        16 * 1024 * 1024,
        config=True,
        help="With backplane_url: bytes of recent changes kept per room in Redis, besides about "
        "2,000 entries (the catch-up window of a process that falls behind); past it the oldest "
        "are trimmed, never those read less than 5 s ago. At least 1 MiB, the largest entry.",
    )

    api_presence_seconds = Float(
        3.0,
        config=True,
        help="Seconds a program that edited through the REST API stays visible in presence.",
    )

    @validate("awareness_rooms")
    def _valid_pattern(self, proposal: dict[str, Any]) -> str:
        try:
            re.compile(proposal["value"])
        except re.error as exc:
            raise TraitError(f"awareness_rooms is not a regular expression: {exc}") from exc
        return proposal["value"]

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
        self.backplane = make_backplane(
            self.backplane_url, self.log, stream_max_bytes=self.backplane_stream_max_bytes
        )
        self.rooms = RoomManager(
            make_file=self._make_file,
            store=self.store,
            watcher=FileWatcher(self.file_poll_interval, self.log),
            save=SaveSettings(self.document_save_delay, self.max_save_delay),
            broadcast_window=self.broadcast_window,
            close_delay=self.room_close_delay,
            events=AuditTrail(getattr(self.serverapp, "event_logger", None)),
            log=self.log,
            backplane=self.backplane,
            limits=Limits(
                per_room=self.max_connections_per_user,
                per_user=self.max_total_connections_per_user,
                awareness=AwarenessLimits(
                    self.max_awareness_clients_per_connection, self.max_awareness_state_bytes
                ),
                awareness_rooms=self.awareness_rooms,
            ),
        )
        self.recheck_rate = RateLimit(
            self.max_recheck_requests_per_minute / 60, self.max_recheck_requests_per_minute
        )
        self.permission_policy = self.permission_policy_class(parent=self, log=self.log)
        warn_if_policy_unenforced(self.serverapp, self.permission_policy, self.log)
        self.settings["jupyter_collab"] = self
        self._recheck_task: asyncio.Task | None = None
        self._gate: Gate | None = None

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
                (r"/api/collaboration/permissions/recheck", RecheckHandler),
                *REST_HANDLERS,
            ]
        )

    # -- permissions -------------------------------------------------------------------------

    @property
    def gate(self) -> Gate:
        """Every way into a document passes here (rooms/gate.py); made on first use, once
        the server's file-id manager exists."""
        if self._gate is None:
            self._gate = Gate(
                self.serverapp.contents_manager,
                self.serverapp.web_app.settings["file_id_manager"],
                self,
                self.rooms,
            )
        return self._gate

    def path_of(self, room_id: str) -> str:
        """The canonical file path behind a room ("" for awareness-only rooms)."""
        return self.gate.path_of(room_id)

    async def contents_write_refusal(
        self, user: Any, path: str, incoming: dict[str, Any] | None, handler: Any
    ) -> str | None:
        """For our authorizers: why a contents-API write of a notebook is refused (None: it
        is not); see `Gate.contents_write_refusal`."""
        return await self.gate.contents_write_refusal(user, path, incoming, handler)

    async def access(self, user: Any, path: str, handler: Any) -> Access:
        assert self.permission_policy is not None
        return await self.permission_policy.access(user, path, handler)

    async def recheck_permissions(self) -> dict[str, int]:
        """Re-check here and on every other process (an admin's explicit request); the
        counts are this process's."""
        await self.backplane.publish_control({"op": "recheck"})
        return await self.recheck_local_permissions()

    async def _on_control(self, message: dict[str, Any]) -> None:
        """A control message from another process (through the backplane)."""
        if message.get("op") == "recheck":
            await self.recheck_local_permissions()

    async def recheck_local_permissions(self) -> dict[str, int]:
        """Re-ask the policy for every open connection here and apply what changed."""
        self.rooms.forget_decisions()
        return await self.gate.recheck(list(self.rooms.rooms.values()))

    async def _recheck_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.permission_recheck_interval)
            try:
                await self.recheck_local_permissions()  # every process runs its own loop
            except Exception:
                self.log.exception("jupyter_collab: permission re-check failed")

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        # Everything allocated while starting lives as long as the server: move it out of
        # the garbage collector's sight. Full collections of those ~200,000 objects paused
        # the event loop for 70-80 ms, which set the fan-out p99 (docs/benchmarks.md).
        gc.collect()
        gc.freeze()
        await self.backplane.start(self._on_control)
        if self.permission_recheck_interval > 0:
            self._recheck_task = asyncio.get_running_loop().create_task(self._recheck_periodically())

    async def stop_extension(self) -> None:
        """Server shutdown (SIGTERM, Ctrl-C): save everything, then close the store."""
        if self._recheck_task is not None:
            self._recheck_task.cancel()
        await self.rooms.stop()
        await self.backplane.stop()
        if self.store:
            await self.store.stop()

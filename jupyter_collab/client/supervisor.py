"""Keeping a notebook client in its room: `Supervisor` owns the client's current connection,
reconnects with backoff when it drops, starts afresh from the server's copy when told to,
and gives up when retrying would get the same answer, with an error a program understands.

How each close code is handled is decided here (close codes: docs/wire-protocol.md), so
that the cell API in `notebook.py` only ever sees a connection that is up, coming back, or
failed for good."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any, Protocol

from pycrdt import TransactionEvent
from tornado.httpclient import HTTPClientError

from ..protocol import CloseCode
from .errors import AccessDenied, ClientClosedError
from .feed import ChangeFeed
from .room import RoomClient, RoomClosed, open_session, room_url

# Any other code (1012 restart, 4500 server error, none) reconnects with the usual backoff.
RELOAD_CODES = {CloseCode.RELOAD}  # the server merged what it could, or refused a change: start afresh
FATAL_CODES = {  # retrying would give the same answer
    CloseCode.TOO_BIG,
    CloseCode.BAD_REQUEST,
    CloseCode.FORBIDDEN,
    CloseCode.NOT_FOUND,
}
SLOW_DOWN_CODES = {  # over a limit or too slow: reconnect, but not at once
    CloseCode.POLICY_VIOLATION,
    CloseCode.TRY_AGAIN_LATER,
}
FATAL_HTTP_CODES = (401, 403, 404)  # the session request: no such file, or no access

log = logging.getLogger("jupyter_collab.client")


class ConnectionSettings(Protocol):
    """What the supervisor reads from its client, at each use (a program may change them)."""

    server_url: str
    path: str
    token: str
    user: dict[str, Any]
    timeout: float  # for connecting and syncing
    min_backoff: float
    max_backoff: float
    ping_interval: float | None
    send_interval: float


def http_error(path: str, error: HTTPClientError) -> BaseException:
    """What a refused session request means to a program."""
    if error.code == 404:
        # The server answers a file you may not open exactly as a missing one.
        return FileNotFoundError(f"{path}: no such file on the server, or no access to it")
    return AccessDenied(f"{path}: no access ({error.code} {error.message})")


def close_error(path: str, code: int | None, reason: str | None) -> BaseException:
    """What a fatal close means to a program."""
    if code == CloseCode.FORBIDDEN:
        return AccessDenied(f"{path}: access denied or revoked ({reason})")
    if code == CloseCode.NOT_FOUND:
        return FileNotFoundError(f"{path}: no such file on the server ({reason})")
    return RoomClosed(code, reason)


class Supervisor:
    """The current connection of a client, and the task that keeps it up.

    Starting afresh replaces the connection and its document: `before_afresh(reason)` lets
    the client settle its accounts with the old one first (refusals, what was sent), and
    `on_transaction` observes every document the client gets. The feed is told what only
    the supervisor sees: a fresh copy arrived, or the client gave up.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        feed: ChangeFeed,
        *,
        on_transaction: Callable[[TransactionEvent], None],
        before_afresh: Callable[[str | None], None],
    ) -> None:
        self._settings = settings
        self._feed = feed
        self._on_transaction = on_transaction
        self._before_afresh = before_afresh
        self.room: RoomClient | None = None
        self.online = asyncio.Event()  # set while connected, and once the client failed
        self.failure: BaseException | None = None  # why it gave up, if it did
        self.fresh = False  # the current document is new and not synced yet
        self.stopped = False  # the client is closing or closed
        self.reconnects = 0
        self.reloads = 0
        self._subscription: Any = None
        self._task: asyncio.Task | None = None
        self._closers: set[asyncio.Task] = set()  # old connections being closed

    @property
    def doc_ready(self) -> bool:
        """False while a fresh document is still empty (not synced yet)."""
        return not self.fresh or (self.room is not None and self.room.synced.is_set())

    @property
    def connected(self) -> bool:
        room = self.room
        return room is not None and room.connected and room.synced.is_set()

    def check_open(self) -> None:
        """Raise why the client cannot be used now: the error it gave up with, or closed."""
        if self.failure is not None:
            raise self.failure
        if self.stopped or self.room is None:
            raise ClientClosedError("the client is closed")

    async def wait_online(self, deadline: float) -> RoomClient:
        """The connection, once it is up and synced (TimeoutError after `deadline`)."""
        loop = asyncio.get_running_loop()
        while True:
            self.check_open()
            room = self.room
            if self.online.is_set() and room is not None and self.connected:
                return room
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self._settings.path}: not connected to the server")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.online.wait(), min(remaining, 0.05))
            if self.online.is_set():
                await asyncio.sleep(0.01)  # set, but the connection is not usable yet

    async def open(self) -> None:
        """Join the room and wait until synced, then keep the connection up."""
        if self.room is not None:
            raise RuntimeError("already open")
        room = self._new_room()
        self._attach(room)
        try:
            await self._connect(room)
        except BaseException as exc:
            await room.close()
            self._detach()
            self.room = None
            if isinstance(exc, RoomClosed) and exc.code in FATAL_CODES:
                raise close_error(self._settings.path, exc.code, exc.reason) from exc
            if isinstance(exc, HTTPClientError) and exc.code in FATAL_HTTP_CODES:
                raise http_error(self._settings.path, exc) from exc
            raise
        self.online.set()
        self._task = asyncio.get_running_loop().create_task(self._supervise())

    async def stop(self) -> None:
        """Stop reconnecting (the client is closing)."""
        self.stopped = True
        self.online.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def leave(self) -> None:
        """Close the connection (after `stop`)."""
        if self.room is not None:
            await self.room.close()
            self._detach()

    def _new_room(self) -> RoomClient:
        settings = self._settings
        return RoomClient(
            "",
            user=settings.user,
            ping_interval=settings.ping_interval,
            send_interval=settings.send_interval,
            apply_unrelated=False,
            headers={"Authorization": f"token {settings.token}"},
        )

    def _attach(self, room: RoomClient) -> None:
        self.room = room
        self._subscription = room.doc.observe(self._on_transaction)

    def _detach(self) -> None:
        if self.room is not None and self._subscription is not None:
            self.room.doc.unobserve(self._subscription)
        self._subscription = None

    async def _connect(self, room: RoomClient) -> None:
        settings = self._settings
        session = await open_session(settings.server_url, settings.path, settings.token)
        room.url = room_url(settings.server_url, session)
        await room.connect(timeout=settings.timeout)
        if self.fresh:
            self.fresh = False
            self._feed.mark(local=False)  # the fresh copy arrived: report it against the old one
            self._feed.settle()

    async def _supervise(self) -> None:
        """Keep the connection up: reconnect with backoff, start afresh when told to."""
        try:
            while True:
                room = self.room
                assert room is not None
                await room.closed.wait()
                self.online.clear()
                await self._recover(room.close_code, room.close_reason)
                if self.failure is not None:
                    return
                self.online.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: do not leave callers waiting forever
            log.exception("jupyter_collab: the client's connection supervisor failed")
            self._fail(exc)

    async def _recover(self, code: int | None, reason: str | None) -> None:
        delay = self._settings.min_backoff
        while True:
            if code in FATAL_CODES:
                self._fail(close_error(self._settings.path, code, reason))
                return
            if code in RELOAD_CODES:
                self._start_afresh(reason)
                wait = 0.0 if delay == self._settings.min_backoff else delay
            else:
                wait = max(delay, 1.0) if code in SLOW_DOWN_CODES else delay
            await asyncio.sleep(wait * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._settings.max_backoff)
            room = self.room
            assert room is not None
            try:
                await self._connect(room)
            except RoomClosed as exc:
                code, reason = exc.code, exc.reason
                continue
            except HTTPClientError as exc:
                if exc.code in FATAL_HTTP_CODES:
                    self._fail(http_error(self._settings.path, exc))
                    return
                code, reason = None, None
            except Exception as exc:  # the server is not back yet, the network is down...
                log.debug("jupyter_collab: reconnecting to %s failed: %r", self._settings.path, exc)
                # An unrelated history that the server did not resolve: start afresh anyway.
                code, reason = (CloseCode.RELOAD, None) if room.unrelated else (None, None)
            else:
                self.reconnects += 1
                return
            if room.ws is not None:
                await room.disconnect()

    def _start_afresh(self, reason: str | None) -> None:
        """The server merged what it could of our document (or refused a change): continue
        from its copy, with a new document."""
        old = self.room
        assert old is not None
        self._before_afresh(reason)
        self._feed.settle()
        self._detach()
        self._track_close(old)
        self.fresh = True
        self.reloads += 1
        self._attach(self._new_room())

    def _track_close(self, room: RoomClient) -> None:
        task = asyncio.get_running_loop().create_task(room.close())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    def _fail(self, error: BaseException) -> None:
        log.warning("jupyter_collab: giving up on %s: %s", self._settings.path, error)
        self.failure = error
        self.online.set()  # wake waiters: they raise the failure
        self._feed.end(error)

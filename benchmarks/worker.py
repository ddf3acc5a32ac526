"""A load-generator process: holds a share of the benchmark's clients and runs their part of
each scenario on command from the coordinator (over a multiprocessing pipe).

Timestamps are `time.monotonic()` (CLOCK_MONOTONIC, shared by all processes of the
machine), so a send time taken in one process and a receive time taken in another compare
directly.
"""

from __future__ import annotations

import asyncio
import math
import time
import traceback
from array import array
from typing import Any

from pycrdt import Array

from .servers import TOKEN, raise_nofile
from .session import open_session, room_url
from .wsclient import YClient, decode_state_vector

INF = math.inf


class Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.clients: dict[str, YClient] = {}
        # fan-out: per receiver, last seen clock per writer, and (writer, from, to, t) records
        self.doc_records: dict[str, list[tuple[int, int, int, float]]] = {}
        self.last_clock: dict[str, dict[int, int]] = {}
        self.tracked_writers: set[int] = set()
        # presence: per receiver, per sender, (clock, t) each time a newer clock is seen
        self.aw_records: dict[str, dict[int, list[tuple[int, float]]]] = {}
        self.aw_exact: dict[str, int] = {}
        self.lags: list[float] = []

    # -- connecting ------------------------------------------------------------------------

    async def connect(
        self, specs: list[dict], concurrency: int = 8, timeout: float = 60.0, budget: float | None = None
    ) -> dict[str, Any]:
        """Connect clients; each spec has `name` and either `url` (a room) or `base_url` and
        `path` (open the session first, as JupyterLab does). Returns per-client timings.
        `timeout` bounds each client; `budget` the whole call (later clients are not tried)."""
        gate = asyncio.Semaphore(concurrency)
        results: dict[str, Any] = {}
        give_up = time.monotonic() + (budget if budget is not None else math.inf)

        async def one(spec: dict) -> None:
            async with gate:
                name = spec["name"]
                token = spec.get("token", TOKEN)
                t0 = time.monotonic()
                if t0 > give_up:
                    results[name] = {"ok": False, "error": "not tried: time budget used up"}
                    return
                try:
                    url = spec.get("url")
                    if url is None:
                        session = await open_session(spec["base_url"], spec["path"], token, timeout)
                        url = room_url(spec["base_url"], session)
                    t1 = time.monotonic()
                    client = YClient(
                        url,
                        token,
                        client_id=spec.get("client_id"),
                        keep_doc=spec.get("keep_doc", True),
                        on_update=self._on_update,
                        on_awareness=self._on_awareness,
                    )
                    expected = spec.get("expect_cells")
                    if expected is not None:
                        source = spec.get("last_source")
                        client.sync_check = lambda c, n=expected, src=source: _complete(c, n, src)
                    client.name = name  # type: ignore[attr-defined]
                    self.clients[name] = client
                    await client.connect(timeout)
                    t2 = client.synced_at or time.monotonic()
                    if spec.get("awareness"):
                        client.set_awareness(spec["awareness"])
                    results[name] = {"ok": True, "session": t1 - t0, "socket": t2 - t1, "total": t2 - t0}
                except Exception as exc:  # noqa: BLE001 - reported to the coordinator
                    results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
                    client = self.clients.pop(name, None)
                    if client is not None:
                        client.close()

        await asyncio.gather(*(one(spec) for spec in specs))
        return results

    async def close(self, names: list[str] | None = None, grace: float = 0.5) -> int:
        names = list(self.clients) if names is None else names
        closed = 0
        for name in names:
            client = self.clients.pop(name, None)
            if client is not None:
                client.close()
                closed += 1
            self.doc_records.pop(name, None)
            self.last_clock.pop(name, None)
            self.aw_records.pop(name, None)
            self.aw_exact.pop(name, None)
        if closed:
            await asyncio.sleep(grace)
        return closed

    def counts(self) -> dict[str, Any]:
        live = sum(1 for c in self.clients.values() if c.ws is not None and not c.ws.closed.is_set())
        codes: dict[str, int] = {}
        for c in self.clients.values():
            if c.ws is not None and c.ws.closed.is_set():
                codes[str(c.ws.close_code)] = codes.get(str(c.ws.close_code), 0) + 1
        return {"clients": len(self.clients), "open": live, "closed_codes": codes}

    # -- receiving -------------------------------------------------------------------------

    def _on_update(self, client: YClient, update: bytes, t: float) -> None:
        """Record which writers' keystrokes this update brought: the document's state
        vector after applying it (so only what the document really integrated counts)."""
        if not self.tracked_writers:
            return
        last = self.last_clock.get(client.name)  # type: ignore[attr-defined]
        if last is None:
            return
        records = self.doc_records[client.name]  # type: ignore[attr-defined]
        tracked = self.tracked_writers
        for writer, new in decode_state_vector(client.doc.get_state()).items():  # type: ignore[union-attr]
            if writer in tracked:
                old = last.get(writer, 0)
                if new > old:
                    records.append((writer, old, new, t))
                    last[writer] = new

    def _on_awareness(self, client: YClient, entries: list[tuple[int, int]], t: float) -> None:
        name = client.name  # type: ignore[attr-defined]
        table = self.aw_records.get(name)
        if table is None:
            return
        own = client.client_id
        for sender, clock in entries:
            if sender == own:
                continue
            seen = table.get(sender)
            if seen is None:
                table[sender] = [(clock, t)]
                self.aw_exact[name] += 1
            elif clock > seen[-1][0]:
                seen.append((clock, t))
                self.aw_exact[name] += 1

    # -- fan-out ---------------------------------------------------------------------------

    async def fanout_run(
        self, start_at: float, duration: float, rate: float, writers: dict[str, dict], tracked: list[int]
    ) -> dict[str, Any]:
        """Writers type one character per tick into their own cell; everyone records when
        each writer's characters arrive (from the document's state vector)."""
        self.tracked_writers = set(tracked)
        for name, client in self.clients.items():
            client.name = name  # type: ignore[attr-defined]
            self.doc_records[name] = []
            self.last_clock[name] = decode_state_vector(client.doc.get_state()) if client.doc else {}
        loop = asyncio.get_running_loop()
        period = 1.0 / rate
        end = start_at + duration
        sends: dict[int, list[float]] = {}
        lags: list[float] = []
        done = loop.create_future()
        pending = [len(writers)]

        def make_tick(client: YClient, text: Any, times: list[float], first: float) -> Any:
            state = {"next": first}

            def tick() -> None:
                now = time.monotonic()
                lags.append(now - state["next"])
                times.append(now)
                text.insert(len(text), "x")  # one keystroke: one item, one clock tick
                state["next"] += period
                if state["next"] < end:
                    loop.call_at(_loop_time(loop, state["next"]), tick)
                else:
                    pending[0] -= 1
                    if pending[0] == 0 and not done.done():
                        done.set_result(None)

            return tick

        for name, spec in writers.items():
            client = self.clients[name]
            client.watch_local_changes()
            cells = client.doc.get("cells", type=Array)  # type: ignore[union-attr]
            text = cells[spec["cell"]]["source"]
            times = sends.setdefault(client.client_id, [])
            first = start_at + spec["offset"]
            loop.call_at(_loop_time(loop, first), make_tick(client, text, times, first))
        if writers:
            await done
        else:
            await asyncio.sleep(max(0.0, end - time.monotonic()))
        return {"sends": {w: array("d", t).tobytes() for w, t in sends.items()}, "lags": _lag_summary(lags)}

    async def fanout_drain(self, finals: dict[int, int], timeout: float) -> dict[str, Any]:
        """Wait until every client here has every writer's last keystroke (or timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(
                self.last_clock[name].get(w, 0) >= final
                for name, c in self.clients.items()
                for w, final in finals.items()
                if w != c.client_id
            ):
                break
            await asyncio.sleep(0.05)
        return {"all_delivered": time.monotonic() < deadline}

    def fanout_analyze(self, sends_raw: dict[int, bytes], with_times: bool = False) -> dict[str, Any]:
        """Latency of every (keystroke, receiving client) pair delivered; with `with_times`,
        also each pair's send time (to see when slow deliveries happened)."""
        sends = {w: array("d", raw) for w, raw in sends_raw.items()}
        latencies = array("d")
        sent_at = array("d")
        expected = delivered = not_integrated = 0
        for name, client in self.clients.items():
            own = client.client_id
            if client.doc is not None:
                # what the document really integrated caps what counts as delivered
                real = client.state_vector()
                last = self.last_clock.get(name, {})
                for w in sends:
                    if real.get(w, 0) < last.get(w, 0):
                        not_integrated += last[w] - real.get(w, 0)
            for w, times in sends.items():
                if w != own:
                    expected += len(times)
            for writer, old, new, t in self.doc_records.get(name, []):
                if writer == own:
                    continue
                times = sends.get(writer)
                if times is None:
                    continue
                for clock in range(old, min(new, len(times))):
                    latencies.append(t - times[clock])
                    if with_times:
                        sent_at.append(times[clock])
                    delivered += 1
        frames = sum(c.frames for c in self.clients.values())
        self.tracked_writers = set()
        return {
            "sent_at": sent_at.tobytes(),
            "latencies": latencies.tobytes(),
            "expected": expected,
            "delivered": delivered,
            "frames": frames,
            "not_integrated": not_integrated,
        }

    # -- presence --------------------------------------------------------------------------

    async def presence_run(
        self, start_at: float, duration: float, rate: float, offsets: dict[str, float], state_template: str
    ) -> dict[str, Any]:
        """Every client publishes a new cursor position per tick; everyone records when it
        first sees each client's position (or a newer one)."""
        loop = asyncio.get_running_loop()
        for name, client in self.clients.items():
            client.name = name  # type: ignore[attr-defined]
            self.aw_records[name] = {}
            self.aw_exact[name] = 0
        period = 1.0 / rate
        end = start_at + duration
        sends: dict[int, tuple[int, list[float]]] = {}
        lags: list[float] = []
        done = loop.create_future()
        pending = [len(offsets)]

        def make_tick(client: YClient, times: list[float], first: float) -> Any:
            state = {"next": first, "n": 0}

            def tick() -> None:
                now = time.monotonic()
                lags.append(now - state["next"])
                state["n"] += 1
                times.append(now)
                client.set_awareness(state_template.replace("@POS@", str(state["n"])))
                state["next"] += period
                if state["next"] < end:
                    loop.call_at(_loop_time(loop, state["next"]), tick)
                else:
                    pending[0] -= 1
                    if pending[0] == 0 and not done.done():
                        done.set_result(None)

            return tick

        for name, offset in offsets.items():
            client = self.clients[name]
            times: list[float] = []
            sends[client.client_id] = (client.awareness_clock + 1, times)
            first = start_at + offset
            loop.call_at(_loop_time(loop, first), make_tick(client, times, first))
        if offsets:
            await done
        return {
            "sends": {cid: (first, array("d", times).tobytes()) for cid, (first, times) in sends.items()},
            "lags": _lag_summary(lags),
        }

    async def presence_drain(self, finals: dict[int, int], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            complete = True
            for name, client in self.clients.items():
                table = self.aw_records.get(name, {})
                for sender, final in finals.items():
                    if sender == client.client_id:
                        continue
                    seen = table.get(sender)
                    if not seen or seen[-1][0] < final:
                        complete = False
                        break
                if not complete:
                    break
            if complete:
                break
            await asyncio.sleep(0.05)
        return {"all_delivered": time.monotonic() < deadline}

    def presence_analyze(self, sends_raw: dict[int, tuple[int, bytes]]) -> dict[str, Any]:
        """Per position (sender, clock): the latest time any client here first saw it or a
        newer one (inf when one never did); plus per-pair latencies and counts."""
        worst: dict[int, array] = {}
        pair_latencies = array("f")
        expected = delivered = exact = 0
        for sender, (_, raw) in sends_raw.items():
            worst[sender] = array("d", [-INF] * (len(raw) // 8))
        for name, client in self.clients.items():
            table = self.aw_records.get(name, {})
            for sender, (first_clock, raw) in sends_raw.items():
                if sender == client.client_id:
                    continue
                times = array("d", raw)
                n = len(times)
                expected += n
                seen = table.get(sender, [])
                out = worst[sender]
                j = 0
                # walk positions in order; seen clocks increase
                for i in range(n):
                    clock = first_clock + i
                    while j < len(seen) and seen[j][0] < clock:
                        j += 1
                    if j == len(seen):
                        for k in range(i, n):
                            out[k] = INF
                        break
                    latency = seen[j][1] - times[i]
                    delivered += 1
                    if seen[j][0] == clock:
                        exact += 1
                    pair_latencies.append(latency)
                    if latency > out[i]:
                        out[i] = latency
        self.aw_records = {}
        return {
            "worst": {s: a.tobytes() for s, a in worst.items()},
            "pairs": pair_latencies.tobytes(),
            "expected": expected,
            "delivered": delivered,
            "exact": exact,
            "frames": sum(c.frames for c in self.clients.values()),
        }

    async def session(self, base_url: str, path: str) -> str:
        """Open a file's session (PUT) and return its room's WebSocket URL."""
        return room_url(base_url, await open_session(base_url, path, TOKEN))

    # -- join --------------------------------------------------------------------------------

    async def join(
        self,
        base_url: str,
        path: str,
        cells: int,
        last_source: str,
        name: str,
        keep: bool,
        timeout: float = 120.0,
        token: str = TOKEN,
    ) -> dict[str, Any]:
        """Session request + socket + sync until the document is complete (all cells, the
        last one's source intact). `keep` leaves the client connected."""
        result = (
            await self.connect(
                [
                    {
                        "name": name,
                        "base_url": base_url,
                        "path": path,
                        "expect_cells": cells,
                        "last_source": last_source,
                        "token": token,
                    }
                ],
                timeout=timeout,
            )
        )[name]
        if not keep:
            await self.close([name], grace=0.05)
        return result


def _complete(client: YClient, cells: int, last_source: str | None) -> bool:
    doc = client.doc
    if doc is None:
        return True
    ycells = doc.get("cells", type=Array)
    if len(ycells) != cells:
        return False
    if cells and last_source is not None:
        return str(ycells[cells - 1]["source"]) == last_source
    return True


def _loop_time(loop: asyncio.AbstractEventLoop, monotonic_t: float) -> float:
    return loop.time() + (monotonic_t - time.monotonic())


def _lag_summary(lags: list[float]) -> dict[str, float]:
    if not lags:
        return {"max": 0.0, "mean": 0.0, "n": 0}
    return {"max": max(lags), "mean": sum(lags) / len(lags), "n": len(lags)}


async def _serve(conn: Any, index: int) -> None:
    worker = Worker(index)
    loop = asyncio.get_running_loop()
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        op, kwargs = message
        if op == "exit":
            await worker.close(grace=0.2)
            conn.send(("ok", None))
            return
        try:
            handler = getattr(worker, op)
            result = handler(**kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            conn.send(("ok", result))
        except Exception:  # noqa: BLE001 - the coordinator reports it
            conn.send(("error", traceback.format_exc()))


def worker_main(conn: Any, index: int) -> None:
    raise_nofile()
    asyncio.run(_serve(conn, index))

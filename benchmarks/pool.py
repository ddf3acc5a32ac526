"""The load generator: several worker processes, driven synchronously by the coordinator."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

from .servers import ProcSample, proc_sample
from .worker import worker_main


class WorkerError(RuntimeError):
    pass


class Pool:
    def __init__(self, size: int) -> None:
        ctx = mp.get_context("spawn")
        self.pipes = []
        self.procs = []
        for index in range(size):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker_main, args=(child, index), daemon=True, name=f"bench-worker-{index}"
            )
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    @property
    def size(self) -> int:
        return len(self.procs)

    def send(self, index: int, op: str, **kwargs: Any) -> None:
        self.pipes[index].send((op, kwargs))

    def recv(self, index: int, timeout: float = 600.0) -> Any:
        pipe = self.pipes[index]
        if not pipe.poll(timeout):
            raise WorkerError(f"worker {index} did not answer within {timeout} s")
        status, value = pipe.recv()
        if status != "ok":
            raise WorkerError(f"worker {index} failed:\n{value}")
        return value

    def call(self, index: int, op: str, reply_timeout: float = 600.0, **kwargs: Any) -> Any:
        self.send(index, op, **kwargs)
        return self.recv(index, reply_timeout)

    def each(
        self,
        op: str,
        per_worker: list[dict[str, Any]] | None = None,
        reply_timeout: float = 600.0,
        **kwargs: Any,
    ) -> list[Any]:
        """Send `op` to every worker (with per-worker extra arguments), then collect replies."""
        for i in range(self.size):
            extra = per_worker[i] if per_worker is not None else {}
            self.send(i, op, **kwargs, **extra)
        return [self.recv(i, reply_timeout) for i in range(self.size)]

    def cpu(self) -> list[ProcSample]:
        return [proc_sample(p.pid) for p in self.procs]

    def close(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.is_alive():
                try:
                    self.call(i, "exit", reply_timeout=10)
                except Exception:  # noqa: BLE001
                    pass
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)

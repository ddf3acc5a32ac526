"""Random collaborative sessions for the property tests: the steps hypothesis draws (text
edits, cell inserts, deletes and moves, clients offline and back, restarts, disk edits) and
a `Session` that runs them with several real clients and checks they converge."""

from __future__ import annotations

import asyncio
import json
import uuid

import nbformat
from hypothesis import strategies as st

from jupyter_collab.client import RoomClient, RoomClosed

from .helpers import eventually, join
from .server import ServerProcess

CLIENTS = 3

texts = st.text(alphabet="ab é😀\n中", min_size=1, max_size=4)
step = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, CLIENTS - 1), st.integers(0, 50), st.integers(0, 50), texts),
    st.tuples(st.just("insert"), st.integers(0, CLIENTS - 1), st.integers(0, 50), texts),
    st.tuples(st.just("delete"), st.integers(0, CLIENTS - 1), st.integers(0, 50)),
    st.tuples(st.just("move"), st.integers(0, CLIENTS - 1), st.integers(0, 50), st.integers(0, 50)),
    st.tuples(st.just("offline"), st.integers(0, CLIENTS - 1)),
    st.tuples(st.just("online"), st.integers(0, CLIENTS - 1)),
    st.tuples(st.just("disk"), st.integers(0, 50), texts),
    st.tuples(st.just("restart")),
    st.tuples(st.just("pause")),
)


def snapshot(client: RoomClient) -> list[tuple[str, str]]:
    return [(ycell.get("id"), str(ycell.get("source"))) for ycell in client.notebook().ycells]


def disk_snapshot(server: ServerProcess, path: str) -> list[tuple[str, str]]:
    try:
        nb = json.loads((server.root / path).read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return [(c.get("id"), "".join(c["source"])) for c in nb["cells"]]


class Session:
    """The clients of one example and what the steps did."""

    def __init__(self, server: ServerProcess, path: str) -> None:
        self.server = server
        self.path = path
        self.clients: list[RoomClient] = []
        self.online: list[bool] = []
        self.created: set[str] = set()
        self.deleted: set[str] = set()

    async def start(self) -> None:
        for _ in range(CLIENTS):
            self.clients.append(await join(self.server, self.path))
            self.online.append(True)
        self.created |= {cell_id for cell_id, _ in snapshot(self.clients[0])}

    async def reconnect(self, index: int) -> None:
        client = self.clients[index]
        try:
            await client.connect()
            await client.save()  # a round trip: a client told to reload is closed by now
        except (RoomClosed, OSError, TimeoutError):
            pass
        if client.closed.is_set():
            # Told to reload (or the server is not back yet): a fresh tab replaces it.
            await client.close()
            self.clients[index] = await join(self.server, self.path)
        self.online[index] = True

    async def run(self, steps: list[tuple]) -> None:
        for item in steps:
            kind = item[0]
            if kind in ("edit", "insert", "delete", "move", "offline", "online"):
                client = self.clients[item[1]]
                nb = client.notebook()
                count = len(nb.ycells)
            if kind == "edit" and count:
                ytext = nb.ycells[item[2] % count]["source"]
                current = str(ytext)
                at = len(current[: item[3] % (len(current) + 1)].encode("utf-8"))
                ytext.insert(at, item[4])
            elif kind == "insert":
                cell_id = uuid.uuid4().hex[:8]
                self.created.add(cell_id)
                cell = {
                    "id": cell_id,
                    "cell_type": "code",
                    "source": item[3],
                    "metadata": {},
                    "outputs": [],
                    "execution_count": None,
                }
                nb.ycells.insert(item[2] % (count + 1), nb.create_ycell(cell))
            elif kind == "delete" and count > 1:
                index = item[2] % count
                self.deleted.add(nb.ycells[index].get("id"))
                del nb.ycells[index]
            elif kind == "move" and count > 1:
                source, target = item[2] % count, item[3] % count
                cell = nb.get_cell(source)
                cell["id"] = nb.ycells[source].get("id")
                with client.doc.transaction():
                    del nb.ycells[source]
                    nb.ycells.insert(target, nb.create_ycell(cell))
            elif kind == "offline" and self.online[item[1]]:
                await client.disconnect()
                self.online[item[1]] = False
            elif kind == "online" and not self.online[item[1]]:
                await self.reconnect(item[1])
            elif kind == "disk":
                await asyncio.sleep(0.7)  # let pending saves land, as a person would
                nb_file = nbformat.read(self.server.root / self.path, as_version=4)
                if nb_file.cells:
                    nb_file.cells[item[1] % len(nb_file.cells)].source += item[2]
                    nbformat.write(nb_file, self.server.root / self.path)
            elif kind == "restart":
                self.server.restart()
                for index, was_online in enumerate(self.online):
                    if was_online:
                        await self.clients[index].wait_closed()
                        await self.reconnect(index)
            await asyncio.sleep(0.02)

    async def converge(self) -> None:
        for index, was_online in enumerate(self.online):
            if not was_online:
                await self.reconnect(index)
        assert all(client.connected for client in self.clients)

        def settled():
            views = {json.dumps(snapshot(c)) for c in self.clients}
            views.add(json.dumps(disk_snapshot(self.server, self.path)))
            return len(views) == 1

        try:
            await eventually(settled, timeout=20)
        except AssertionError:
            views = [snapshot(c) for c in self.clients] + [disk_snapshot(self.server, self.path)]
            raise AssertionError(f"no convergence: {views}\n{self.server.log()[-3000:]}") from None
        final = snapshot(self.clients[0])
        ids = [cell_id for cell_id, _ in final]
        assert len(ids) == len(set(ids)), f"duplicated cells: {final}"
        assert set(ids) <= self.created, f"cells from nowhere: {set(ids) - self.created}"
        # A deleted cell may come back only when its deleter's history was unknown to a
        # restarted server without history (deletions are not replayed then); nothing
        # that was never deleted may be missing.
        missing = self.created - self.deleted - set(ids)
        assert not missing, f"lost cells: {missing}"

    async def close(self) -> None:
        for client in self.clients:
            await client.close()

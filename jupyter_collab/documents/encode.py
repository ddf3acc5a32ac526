"""Encode a notebook as one Yjs update, without building it item by item through pycrdt.

Why: opening a notebook (a cold join) means turning its JSON into a shared document.
jupyter-ydoc's `YNotebook.set` does that one cell, map entry and text at a time through
pycrdt, about 75 µs per cell (150 ms for 2,000 cells), most of it crossing from Python into
the CRDT library for each of the ~10 items a cell has. Writing the same items directly in the
Yjs v1 update encoding and applying that update once takes a tenth of the time.

The document produced is the one `YNotebook.set` produces on an empty document, item for
item in content (same root types, same keys, same nested types, numbers as floats as pycrdt
stores them); `tests/test_loading.py::test_encoded_notebook_is_what_ynotebook_set_makes`
checks it against `YNotebook.set`. Anything this encoder does not recognise raises
`Unsupported`, and the caller falls back to `YNotebook.set`.

Encoding (y-protocols / Yjs "update v1", as yrs reads it): one client's structs in clock
order, each an Item: an info byte (content kind in the low 5 bits, 0x80 when it has a left
origin, 0x20 when it is a map entry), then its left origin's id or else its parent (a root
type's name, or the id of the item that holds the nested type) and map key, then content.
Clocks count UTF-16 code units for strings, one for everything else.
"""

from __future__ import annotations

import random
import struct
from typing import Any
from uuid import uuid4

from ..protocol import var_string, var_uint

_HAS_ORIGIN = 0x80
_HAS_KEY = 0x20
_CONTENT_STRING = 4
_CONTENT_TYPE = 7
_CONTENT_ANY = 8
_TYPE_ARRAY, _TYPE_MAP, _TYPE_TEXT = 0, 1, 2

# jupyter-ydoc's defaults for a notebook's metadata and for an empty notebook.
_DEFAULT_METADATA = {"language_info": {"name": ""}, "kernelspec": {"name": "", "display_name": ""}}


class Unsupported(ValueError):
    """Content this encoder does not handle; use `YNotebook.set` instead."""


def _any(value: Any, out: bytearray) -> None:
    """lib0 `writeAny`, the way yrs writes pycrdt's values (every number as a float)."""
    if value is None:
        out.append(126)
    elif value is True:
        out.append(120)
    elif value is False:
        out.append(121)
    elif isinstance(value, (int, float)):
        number = float(value)
        single = struct.pack(">f", number) if abs(number) < 3.4e38 else b""
        if single and struct.unpack(">f", single)[0] == number:
            out.append(124)
            out += single
        else:
            out.append(123)
            out += struct.pack(">d", number)
    elif isinstance(value, str):
        out.append(119)
        out += var_string(value)
    elif isinstance(value, dict):
        out.append(118)
        out += var_uint(len(value))
        for key, item in value.items():
            if not isinstance(key, str):
                raise Unsupported(f"non-string key {key!r}")
            out += var_string(key)
            _any(item, out)
    elif isinstance(value, (list, tuple)):
        out.append(117)
        out += var_uint(len(value))
        for item in value:
            _any(item, out)
    else:
        raise Unsupported(f"cannot store {type(value).__name__} in a notebook")


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _text(value: Any) -> str:
    """A source or stream text: a string, or a list of lines as nbformat allows."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "".join(value)
    raise Unsupported("text is neither a string nor a list of strings")


class _Writer:
    """Items of one client, numbered by clock in the order they are written.

    A parent is given by its reference as encoded on the wire (`root` or `nested`), made
    once per container: most of a notebook's items are entries of some cell's map.
    """

    def __init__(self, client: int) -> None:
        self.clock = 0
        self.count = 0
        self.out = bytearray()
        self._client = var_uint(client)
        self._names: dict[str, bytes] = {}  # encoded map keys (few, repeated)

    def root(self, name: str) -> bytes:
        return b"\x01" + var_string(name)

    def nested(self, clock: int) -> bytes:
        """The reference to the type held by the item at `clock`."""
        return b"\x00" + self._client + var_uint(clock)

    def _start(self, kind: int, parent: bytes, key: str | None, origin: int | None) -> None:
        """An item's info byte, then its left origin, or else its parent and map key."""
        out = self.out
        if origin is not None:
            out.append(kind | _HAS_ORIGIN | (_HAS_KEY if key is not None else 0))
            out += self._client
            out += var_uint(origin)
            return
        if key is None:
            out.append(kind)
            out += parent
            return
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = var_string(key)
        out.append(kind | _HAS_KEY)
        out += parent
        out += name

    def _advance(self, length: int) -> int:
        clock = self.clock
        self.clock += length
        self.count += 1
        return clock

    def any(self, parent: bytes, key: str, value: Any) -> None:
        self._start(_CONTENT_ANY, parent, key, None)
        self.out.append(1)
        _any(value, self.out)
        self._advance(1)

    def type(self, parent: bytes, key: str | None, type_ref: int, origin: int | None = None) -> int:
        """A nested type's item; returns its clock (the type's id)."""
        self._start(_CONTENT_TYPE, parent, key, origin)
        self.out.append(type_ref)
        return self._advance(1)

    def text(self, parent: bytes, key: str, text: str) -> None:
        """A Text type holding `text`."""
        clock = self.type(parent, key, _TYPE_TEXT)
        if text:
            self._start(_CONTENT_STRING, self.nested(clock), None, None)
            self.out += var_string(text)
            self._advance(_utf16_length(text))

    def map(self, parent: bytes, key: str, entries: dict[str, Any]) -> None:
        """A Map type whose entries are plain values."""
        ref = self.nested(self.type(parent, key, _TYPE_MAP))
        for name, value in entries.items():
            self.any(ref, name, value)

    def update(self) -> bytes:
        header = var_uint(1) + var_uint(self.count) + self._client + var_uint(0)
        return header + bytes(self.out) + var_uint(0)  # no deletions


def _cell(writer: _Writer, cells: bytes, cell: Any, origin: int | None) -> int:
    """Write one cell as `YNotebook.create_ycell` shapes it; returns its item's clock."""
    if not isinstance(cell, dict):
        raise Unsupported("a cell is not an object")
    cell_type = cell.get("cell_type")
    if cell_type not in ("code", "markdown", "raw") or "source" not in cell:
        raise Unsupported("a cell has no known cell_type or no source")
    metadata = cell.get("metadata", {})
    if not isinstance(metadata, dict):
        raise Unsupported("cell metadata is not an object")
    outputs = cell.get("outputs", []) if cell_type == "code" else None
    if outputs is not None and not (
        isinstance(outputs, list) and all(isinstance(output, dict) for output in outputs)
    ):
        raise Unsupported("cell outputs are not a list of objects")
    fields = dict(cell)
    if "id" not in fields:
        fields["id"] = str(uuid4())
    if cell_type != "code" and "attachments" in fields and not fields["attachments"]:
        del fields["attachments"]
    if cell_type == "code":
        fields["execution_state"] = "idle"
    clock = writer.type(cells, None, _TYPE_MAP, origin)
    ref = writer.nested(clock)
    for key, value in fields.items():
        if key == "source":
            writer.text(ref, key, _text(value))
        elif key == "metadata":
            writer.map(ref, key, metadata)
        elif key == "outputs" and outputs is not None:
            _outputs(writer, ref, outputs)
        else:
            writer.any(ref, key, value)
    return clock


def _outputs(writer: _Writer, cell: bytes, outputs: list[dict]) -> None:
    array = writer.nested(writer.type(cell, "outputs", _TYPE_ARRAY))
    previous: int | None = None
    for output in outputs:
        stream = output.get("output_type") == "stream"
        fields = {**output, "text": _text(output.get("text", ""))} if stream else output
        previous = writer.type(array, None, _TYPE_MAP, previous)
        ref = writer.nested(previous)
        for key, value in fields.items():
            if stream and key == "text":
                writer.text(ref, key, value)
            else:
                writer.any(ref, key, value)


def encode_notebook(notebook: Any, client: int | None = None) -> bytes:
    """The Yjs update that `YNotebook.set(notebook)` would make on an empty document.

    Raises `Unsupported` for content it does not recognise (the caller uses `YNotebook.set`).
    """
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise Unsupported("not a notebook: no list of cells")
    metadata = notebook.get("metadata", {})
    if not isinstance(metadata, dict):
        raise Unsupported("notebook metadata is not an object")
    metadata = dict(metadata)
    for key, default in _DEFAULT_METADATA.items():
        metadata.setdefault(key, default)
    cells = notebook["cells"] or [
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {"trusted": True},
            "outputs": [],
            "source": "",
            "id": str(uuid4()),
        }
    ]
    writer = _Writer(client if client is not None else random.getrandbits(32))
    try:
        meta = writer.root("meta")
        writer.any(meta, "nbformat", notebook.get("nbformat", 4))
        writer.any(meta, "nbformat_minor", notebook.get("nbformat_minor", 5))
        writer.map(meta, "metadata", metadata)
        root = writer.root("cells")
        previous: int | None = None
        for cell in cells:
            previous = _cell(writer, root, cell, previous)
    except UnicodeEncodeError as exc:  # a lone surrogate (a "\ud800" escape in the file)
        raise Unsupported(str(exc)) from exc
    return writer.update()

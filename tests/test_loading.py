"""Loading notebooks fast must load exactly what the slow, standard way loads.

Two shortcuts on the cold-join path are checked against the code they stand in for:
the direct Yjs encoding of a notebook against jupyter-ydoc's `YNotebook.set`, and the
local notebook read against jupyter_server's contents manager. A real server then opens
the same notebooks and a client edits them (tests/test_sync.py and the others open every
notebook through these shortcuts too).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Text

from jupyter_collab.documents.encode import Unsupported, encode_notebook
from jupyter_collab.persistence.notebook_read import file_hash, parse_notebook, reads_like_stock_manager

from .helpers import join, sources

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)  # emoji, CJK, combining
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
metadata = st.dictionaries(texts, json_values, max_size=3)
source = texts | st.lists(texts, max_size=3)
outputs = st.lists(
    st.one_of(
        st.fixed_dictionaries({"output_type": st.just("stream"), "name": st.just("stdout"), "text": source}),
        st.fixed_dictionaries(
            {
                "output_type": st.just("execute_result"),
                "execution_count": st.integers(1, 99),
                "data": st.dictionaries(st.sampled_from(["text/plain", "text/html"]), texts, max_size=2),
                "metadata": metadata,
            }
        ),
    ),
    max_size=3,
)
code_cells = st.fixed_dictionaries(
    {
        "cell_type": st.just("code"),
        "id": st.uuids().map(str),
        "source": source,
        "metadata": metadata,
        "outputs": outputs,
        "execution_count": st.none() | st.integers(0, 10**6),
    }
)
text_cells = st.fixed_dictionaries(
    {
        "cell_type": st.sampled_from(["markdown", "raw"]),
        "id": st.uuids().map(str),
        "source": source,
        "metadata": metadata,
    },
    optional={"attachments": st.just({}) | st.just({"a.png": {"image/png": "iVBOR"}})},
)
notebooks = st.fixed_dictionaries(
    {
        "cells": st.lists(code_cells | text_cells, min_size=1, max_size=6),  # empty: see below
        "metadata": metadata,
        "nbformat": st.just(4),
        "nbformat_minor": st.integers(4, 5),
    }
)


def shape(value: object) -> object:
    """The shared types of a document, to check that the same things are Text, Map, Array."""
    if isinstance(value, Text):
        return ("Text", str(value))
    if isinstance(value, Map):
        return ("Map", {key: shape(item) for key, item in value.items()})
    if isinstance(value, Array):
        return ("Array", [shape(item) for item in value])
    return ("value", value)


def loaded_by_ydoc(notebook: dict) -> YNotebook:
    model = YNotebook()
    model.set(copy.deepcopy(notebook))
    return model


def loaded_by_encoder(notebook: dict) -> YNotebook:
    doc = Doc()
    doc.apply_update(encode_notebook(notebook))
    return YNotebook(doc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notebooks)
def test_encoded_notebook_is_what_ynotebook_set_makes(notebook):
    expected, encoded = loaded_by_ydoc(notebook), loaded_by_encoder(notebook)
    assert encoded.get() == expected.get()
    assert shape(encoded.ycells) == shape(expected.ycells)
    assert shape(encoded.ydoc.get("meta", type=Map)) == shape(expected.ydoc.get("meta", type=Map))
    # The encoder changed nothing in the content it was given.
    assert notebook == json.loads(json.dumps(notebook))


def test_encoded_notebook_takes_edits_and_syncs_both_ways():
    notebook = {
        "cells": [
            {"cell_type": "markdown", "id": "m", "source": "naïve 😀 text", "metadata": {}},
            {
                "cell_type": "code",
                "id": "c",
                "source": ["x = 1\n", "y = '日本'"],
                "metadata": {"tags": ["a"]},
                "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n", "2\n"]}],
                "execution_count": 3,
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    server = loaded_by_encoder(notebook)
    client = YNotebook(Doc())
    client.ydoc.apply_update(server.ydoc.get_update())
    markdown, stream = client.ycells[0]["source"], client.ycells[1]["outputs"][0]["text"]
    markdown += " and more"
    stream += "3\n"
    server.ydoc.apply_update(client.ydoc.get_update(server.ydoc.get_state()))
    server.ycells[1]["source"].insert(0, "# top\n")
    client.ydoc.apply_update(server.ydoc.get_update(client.ydoc.get_state()))
    for model in (server, client):
        cells = model.get()["cells"]
        assert cells[0]["source"] == "naïve 😀 text and more"
        assert cells[1]["source"] == "# top\nx = 1\ny = '日本'"
        assert cells[1]["outputs"][0]["text"] == "1\n2\n3\n"
        assert cells[1]["execution_count"] == 3


@pytest.mark.parametrize(
    "notebook",
    [
        {"cells": "not a list"},
        {"cells": [{"cell_type": "heading", "source": "", "metadata": {}}]},
        {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": {}}]},
        {"cells": [{"cell_type": "code", "source": "\ud800", "metadata": {}, "outputs": []}]},
        {"cells": [{"cell_type": "raw", "source": 3, "metadata": {}}]},
        {"cells": [], "metadata": {"bytes": b"x"}},
    ],
)
def test_encoder_refuses_what_it_does_not_know(notebook):
    with pytest.raises(Unsupported):
        encode_notebook(notebook)


def test_empty_notebook_gets_one_empty_code_cell_like_ynotebook_set():
    empty = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    ours, theirs = loaded_by_encoder(empty).get(), loaded_by_ydoc(empty).get()
    for result in (ours, theirs):
        for cell in result["cells"]:
            cell.pop("id")
    assert ours == theirs


# -- reading the file ------------------------------------------------------------------------


def awkward_notebook() -> dict:
    """What nbformat's reader transforms: split lines, transient keys, trust, attachments."""
    return {
        "cells": [
            {
                "cell_type": "markdown",
                "id": "md",
                "source": ["# Title\n", "text ✓"],
                "metadata": {"trusted": True},
                "attachments": {"a.svg": {"image/svg+xml": ["<svg>\n", "</svg>"]}},
            },
            {
                "cell_type": "code",
                "id": "code",
                "source": ["print(1)\n", "1"],
                "metadata": {"trusted": False, "tags": ["x"]},
                "execution_count": 1,
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": ["1\n", "2\n"]},
                    {
                        "output_type": "execute_result",
                        "execution_count": 1,
                        "data": {"text/plain": ["a\n", "b"], "application/json": {"k": [1, 2]}},
                        "metadata": {},
                    },
                ],
            },
        ],
        "metadata": {
            "orig_nbformat": 3,
            "signature": "sha256:abc",
            "kernelspec": {"name": "python3", "display_name": "P"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@pytest.fixture
def contents_manager(tmp_path: Path) -> AsyncFileContentsManager:
    from nbformat.sign import MemorySignatureStore, NotebookNotary

    cm = AsyncFileContentsManager(root_dir=str(tmp_path))
    cm.notary = NotebookNotary(store_factory=MemorySignatureStore, secret=b"test secret")
    return cm


@pytest.mark.parametrize("signed", [False, True])
async def test_fast_read_matches_contents_manager(tmp_path, contents_manager, signed):
    data = json.dumps(awkward_notebook(), indent=1).encode()
    if signed:  # as `jupyter trust` does: the signature of the notebook as it is read
        contents_manager.notary.sign(nbformat.reads(data, as_version=4))
    (tmp_path / "n.ipynb").write_bytes(data)
    model = await contents_manager.get("n.ipynb", content=True, type="notebook", require_hash=True)
    assert reads_like_stock_manager(contents_manager)
    fast = parse_notebook(data, contents_manager)
    assert fast == json.loads(json.dumps(model["content"]))
    assert fast["cells"][1]["metadata"]["trusted"] is signed
    assert file_hash(data, contents_manager) == model["hash"]


def test_fast_read_leaves_other_formats_and_managers_alone(contents_manager):
    v3 = json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": [], "metadata": {}}).encode()
    assert parse_notebook(v3, contents_manager) is None
    assert parse_notebook(b"{not json", contents_manager) is None

    class CustomReader(AsyncFileContentsManager):
        async def get(self, path, content=True, type=None, format=None, require_hash=False):
            return await super().get(path, content, type, format, require_hash)

    assert not reads_like_stock_manager(CustomReader())


async def test_server_opens_awkward_notebook_as_the_contents_manager_reads_it(server):
    path = "awkward.ipynb"
    (server.root / path).write_text(json.dumps(awkward_notebook()))
    client = await join(server, path)
    assert sources(client) == ["# Title\ntext ✓", "print(1)\n1"]
    cells = client.notebook().get()["cells"]
    assert cells[1]["outputs"][0]["text"] == "1\n2\n"
    assert cells[1]["outputs"][1]["data"]["text/plain"] == "a\nb"
    assert "trusted" not in cells[0]["metadata"] and cells[1]["metadata"]["trusted"] is False
    assert client.notebook().ydoc.get("meta", type=Map)["metadata"].to_py() == {
        "kernelspec": {"name": "python3", "display_name": "P"},
        "language_info": {"name": ""},
    }
    await client.close()

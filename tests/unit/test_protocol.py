"""The wire contract (protocol.py): frames decoded strictly, notices and close reasons in
the shapes docs/wire-protocol.md gives."""

from __future__ import annotations

import json

import pytest

from jupyter_collab.protocol import (
    CLOSE_REASON_MAX_BYTES,
    AwarenessEntry,
    AwarenessMessage,
    ProtocolError,
    SaveRequest,
    SyncMessage,
    SyncType,
    awareness_frame,
    custom_reply_frame,
    decode_awareness,
    decode_message,
    decode_server_notice,
    decode_state_vector,
    encode_awareness,
    reload_reason,
    save_request_frame,
    sync_frame,
    unrelated_histories,
    var_uint,
)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (sync_frame(SyncType.STEP1, b"\x00"), SyncMessage(SyncType.STEP1, b"\x00")),
        (sync_frame(SyncType.UPDATE, b"x" * 300), SyncMessage(SyncType.UPDATE, b"x" * 300)),
        (awareness_frame(b"\x00"), AwarenessMessage(b"\x00")),
        (save_request_frame(2**20), SaveRequest(2**20)),
    ],
)
def test_well_formed_frames_decode_to_what_was_encoded(frame: bytes, message):
    assert decode_message(frame) == message


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x03\x00",  # unknown message type
        b"\x00\x03\x00",  # unknown sync type
        sync_frame(SyncType.UPDATE, b"abc")[:-1],  # payload shorter than its length says
        sync_frame(SyncType.UPDATE, b"abc") + b"\x00",  # trailing bytes
        b"\x00\x00\xff",  # truncated varint
        b"\x00\x00" + b"\xff" * 10 + b"\x01",  # varint over 64 bits
        b"\x02" + var_uint(4) + b"load" + var_uint(1),  # a custom action other than save
        b"\x02\x02\xff\xfe\x01",  # an action that is not UTF-8
        custom_reply_frame({"type": "save"}),  # the server's own JSON reply, sent back
    ],
)
def test_malformed_frames_are_refused(frame: bytes):
    with pytest.raises(ProtocolError):
        decode_message(frame)


def test_awareness_entries_round_trip_and_malformed_ones_are_refused():
    entries = [AwarenessEntry(1, 3, '{"a":"é"}'), AwarenessEntry(2**40, 1, "null")]
    payload = encode_awareness(entries)
    assert decode_awareness(payload) == entries
    for bad in (payload[:-1], payload + b"\x00", b"\x01\x01\x01\x02\xff\xfe"):
        with pytest.raises(ProtocolError):
            decode_awareness(bad)


def test_state_vectors_decode_strictly():
    assert decode_state_vector(b"\x00") == {}
    assert decode_state_vector(b"\x02" + var_uint(7) + var_uint(300) + var_uint(9) + var_uint(1)) == {
        7: 300,
        9: 1,
    }
    for bad in (b"", b"\x01\x07", b"\x00\x00"):
        with pytest.raises(ProtocolError):
            decode_state_vector(bad)


def test_server_notices_are_read_only_from_json_objects_on_the_custom_channel():
    assert decode_server_notice(custom_reply_frame({"type": "role"})) == {"type": "role"}
    assert decode_server_notice(awareness_frame(b"\x00")) is None
    assert decode_server_notice(b"\x02" + var_uint(2) + b"[]") is None
    assert decode_server_notice(b"\x02" + var_uint(3) + b"{no") is None


@pytest.mark.parametrize(
    "message",
    [
        pytest.param("", id="empty"),
        pytest.param("short", id="short"),
        pytest.param("x" * 10_000, id="long"),
        pytest.param("é" * 200, id="accents"),
        pytest.param("😀" * 100, id="emoji"),
        pytest.param("a" * 20 + "中" * 30, id="cjk"),
        pytest.param('cell "x\\y" is locked\n' * 10, id="escapes"),
    ],
)
def test_reload_reason_fits_a_close_frame_and_stays_valid_json(message: str):
    reason = reload_reason("permission_denied", message)
    assert len(reason.encode("utf-8")) <= CLOSE_REASON_MAX_BYTES
    body = json.loads(reason)
    assert body["reason"] == "permission_denied" and body["reloadable"] is True
    assert message.startswith(body["errorReason"])  # cut, never garbled
    if len(message.encode()) <= 40:
        assert body["errorReason"] == message  # a short message is kept whole


def test_unrelated_histories_need_history_on_both_sides_and_none_shared():
    assert unrelated_histories({1: 5}, {2: 3})
    assert not unrelated_histories({1: 5, 2: 1}, {2: 3})  # some shared history
    assert not unrelated_histories({}, {2: 3})  # a fresh document
    assert not unrelated_histories({1: 5}, {})

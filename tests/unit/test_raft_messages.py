"""Raft wire formats: messages, entries and membership changes round-trip through JSON,
and malformed input is refused with ValueError."""
import json

import pytest

from metadata.raft.confchange import ConfChange, ConfChangeType
from metadata.raft.messages import WIRE_VERSION, Message, MessageType
from metadata.raft.records import ConfState, Entry, EntryKind, HardState, Snapshot, SnapshotMeta
from metadata.raft.storage import pack_entry, unpack_entry


def _wire(m: Message) -> Message:
    return Message.decode(json.loads(json.dumps(m.encode())))


def test_every_message_type_round_trips_through_json():
    entries = (Entry(5, 2, b"\x00\xffcmd"), Entry(6, 2, b"", EntryKind.NOOP),
               Entry(7, 3, ConfChange(ConfChangeType.ADD_LEARNER, "m4").encode(), EntryKind.CONF))
    for t in MessageType:
        m = Message(t, "m2", "m1", term=3, log_term=2, index=4, entries=entries, commit=4, reject=True,
                    reject_hint=3, context=b"\x01ctx")
        assert _wire(m) == m
    assert _wire(Message(MessageType.HEARTBEAT, "a", "b", 1)) == Message(MessageType.HEARTBEAT, "a", "b", 1)


def test_snapshot_meta_travels_and_data_stays_out_of_the_json():
    meta = SnapshotMeta(100, 7, ConfState(frozenset({"a", "b"}), frozenset({"c"})))
    m = Message(MessageType.SNAP, "b", "a", 7, snapshot=Snapshot(meta, b"x" * 1000))
    d = m.encode()
    assert d["v"] == WIRE_VERSION and "x" * 100 not in json.dumps(d)
    back = Message.decode(d)
    assert back.snapshot == Snapshot(meta, None)


@pytest.mark.parametrize("bad", [
    {"v": 99, "type": "app", "to": "a", "from": "b", "term": 1},
    {"v": WIRE_VERSION, "type": "nope", "to": "a", "from": "b", "term": 1},
    {"v": WIRE_VERSION, "type": "app", "to": "a", "from": "b", "term": -1},
    {"v": WIRE_VERSION, "type": "app", "to": "a", "from": "b", "term": "1"},
    {"v": WIRE_VERSION, "type": "app", "to": 1, "from": "b", "term": 1},
    {"v": WIRE_VERSION, "type": "app", "from": "b", "term": 1},
    {"v": WIRE_VERSION, "type": "app", "to": "a", "from": "b", "term": 1, "context": "not base64!"},
    {"v": WIRE_VERSION, "type": "app", "to": "a", "from": "b", "term": 1, "entries": [{"i": 1}]},
    {"v": WIRE_VERSION, "type": "app", "to": "a", "from": "b", "term": 1, "reject": "yes"},
    {"v": WIRE_VERSION, "type": "app", "to": "a", "from": "b", "term": 1, "entries": [{"i": 1, "t": 1, "k": 9, "d": ""}]},
])
def test_malformed_messages_are_refused(bad):
    with pytest.raises(ValueError):
        Message.decode(bad)


def test_conf_change_encoding_and_validation_of_the_wire_form():
    cc = ConfChange(ConfChangeType.ADD_VOTER, "m9", context=b"127.0.0.1:7000")
    assert ConfChange.decode(cc.encode()) == cc
    for bad in (b"", b"{}", b'{"v":1,"type":"add_voter","node":""}', b'{"v":1,"type":"x","node":"a"}', b"\xff"):
        with pytest.raises(ValueError):
            ConfChange.decode(bad)


def test_records_round_trip_and_disk_payload_keeps_the_entry_kind():
    hs = HardState(4, "m2", 17)
    assert HardState.from_dict(json.loads(json.dumps(hs.to_dict()))) == hs
    meta = SnapshotMeta(9, 3, ConfState(frozenset({"a"}), frozenset({"b"})))
    assert SnapshotMeta.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    for e in (Entry(3, 2, b"data"), Entry(4, 2, b"", EntryKind.NOOP), Entry(5, 2, b"{}", EntryKind.CONF)):
        assert unpack_entry(e.index, e.term, pack_entry(e)) == e

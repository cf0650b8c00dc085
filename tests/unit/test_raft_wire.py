"""The binary form of a Raft message batch: every message type but SNAP round-trips
exactly, anything malformed is refused as a whole, and the transport steps binary replies."""
from __future__ import annotations

import asyncio

import pytest

from metadata.raft import Message, MessageType
from metadata.raft.records import Entry, EntryKind, Snapshot, SnapshotMeta
from metadata.replication import wire
from metadata.replication.transport import RaftTransport
from objstore.errors import InvalidArgument


def _all_kinds() -> list[Message]:
    entries = (Entry(7, 3, b"cmd\x00\xff" * 50), Entry(8, 3, b"", EntryKind.NOOP), Entry(9, 4, b"cc", EntryKind.CONF))
    out = []
    for t in MessageType:
        if t is MessageType.SNAP:
            continue
        out.append(Message(t, "m2", "m1", term=2**40, log_term=3, index=6, entries=entries if t is MessageType.APP else (),
                           commit=5, reject=t is MessageType.APP_RESP, reject_hint=4,
                           context=b"ctx" if t.name.startswith(("HEARTBEAT", "READ")) else b""))
    out.append(Message(MessageType.READ_INDEX, "m2", "m1", term=0))
    return out


def test_every_message_type_round_trips():
    assert set(wire._TYPES) == set(MessageType) and len(wire._TYPES) == len(MessageType)
    msgs = _all_kinds()
    for reply in (False, True):
        body = wire.encode("m1", "127.0.0.1:9", "m2", msgs, reply=reply)
        assert body.startswith(wire.MAGIC)
        assert wire.decode(body, "m2") == ("m1", "127.0.0.1:9", msgs, reply)
    assert wire.decode(wire.encode("m1", "", "m2", []), "m2") == ("m1", "", [], False)


def test_messages_that_do_not_fit_are_not_encoded():
    snap = Message(MessageType.SNAP, "m2", "m1", 3, snapshot=Snapshot(SnapshotMeta(5, 3)))
    for m in (snap, Message(MessageType.APP, "m3", "m1", 3), Message(MessageType.APP, "m2", "m9", 3)):
        with pytest.raises(ValueError):
            wire.encode("m1", "h:1", "m2", [m])


def test_malformed_batches_are_refused():
    good = wire.encode("m1", "127.0.0.1:9", "m2", _all_kinds(), reply=True)
    with pytest.raises(InvalidArgument):
        wire.decode(good, "m3")  # addressed to another node
    for cut in range(len(good)):
        with pytest.raises(InvalidArgument):
            wire.decode(good[:cut], "m2")
    with pytest.raises(InvalidArgument):
        wire.decode(good + b"\x00", "m2")
    with pytest.raises(InvalidArgument):
        wire.decode(good[:3] + b"\x02" + good[4:], "m2")  # unknown flag
    one = wire.encode("m1", "h:1", "m2", [Message(MessageType.HEARTBEAT, "m2", "m1", 3)])
    head = len(one) - wire._MSG.size - 4
    snap_code = wire._TYPES.index(MessageType.SNAP)
    for bad in (bytes([snap_code]), bytes([len(MessageType)])):
        with pytest.raises(InvalidArgument):
            wire.decode(one[:head] + bad + one[head + 1:], "m2")
    with pytest.raises(InvalidArgument):
        wire.decode(one[:head + 1] + b"\x02" + one[head + 2:], "m2")  # reject must be 0 or 1
    app = wire.encode("m1", "h:1", "m2", [Message(MessageType.APP, "m2", "m1", 3, entries=(Entry(1, 3, b"x"),))])
    kind_at = len(app) - 1 - 4 - 1
    with pytest.raises(InvalidArgument):
        wire.decode(app[:kind_at] + b"\x09" + app[kind_at + 1:], "m2")  # unknown entry kind
    with pytest.raises(InvalidArgument):
        wire.decode(wire.encode("", "h:1", "m2", []), "m2")  # no sender
    with pytest.raises(InvalidArgument):
        wire.decode(wire.encode("m1", "nocolon", "m2", []), "m2")


def test_the_transport_steps_binary_replies_and_drops_bad_ones():
    got: list = []
    t = RaftTransport("m1", "127.0.0.1:1", "secret", lambda _: None, lambda _: None, lambda *_: None,
                      on_reply=lambda frm, msgs: got.append((frm, msgs)))
    ack = Message(MessageType.APP_RESP, "m1", "m2", 3, index=9)
    t._take_reply("m2", wire.encode("m2", "127.0.0.1:2", "m1", [ack]))
    assert got == [("m2", [ack])]
    t._take_reply("m3", wire.encode("m2", "127.0.0.1:2", "m1", [ack]))  # not the peer called
    t._take_reply("m2", wire.encode("m2", "127.0.0.1:2", "m1", [ack])[:-1])  # truncated
    assert got == [("m2", [ack])]


def test_one_message_wakes_one_sender_and_a_second_goes_out_meanwhile():
    async def run() -> list:
        posted: list = []
        gate = asyncio.Event()
        t = RaftTransport("m1", "127.0.0.1:1", "secret", lambda _: "127.0.0.1:2", lambda _: None, lambda *_: None)

        async def post(peer, batch):
            posted.append([m.index for m in batch])
            await gate.wait()
            return True

        t._post_batch = post  # type: ignore[method-assign]
        t.send([Message(MessageType.APP, "m2", "m1", 3, index=1)])
        for _ in range(5):
            await asyncio.sleep(0)
        assert posted == [[1]] and len(t._peers["m2"].idle) == 1  # the other sender still waits
        t.send([Message(MessageType.APP, "m2", "m1", 3, index=2), Message(MessageType.APP, "m2", "m1", 3, index=3)])
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        for _ in range(5):
            await asyncio.sleep(0)
        await t.close()
        return posted

    assert asyncio.run(run()) == [[1], [2, 3]]

"""Replies in the response of a Raft message batch: the request asks for them, and the
sender steps only well-formed replies from the peer it called, addressed to itself."""
from __future__ import annotations

import json

from metadata.raft import Message, MessageType
from metadata.replication.transport import RaftTransport, decode_batch, encode_batch, wants_reply


def _transport(got: list) -> RaftTransport:
    return RaftTransport("m1", "127.0.0.1:1", "secret", lambda _: None, lambda _: None, lambda *_: None,
                         on_reply=lambda frm, msgs: got.append((frm, msgs)))


def test_a_batch_asks_for_replies_only_when_told():
    msgs = [Message(MessageType.HEARTBEAT, "m2", "m1", 3, commit=7)]
    asking = json.loads(encode_batch("m1", "127.0.0.1:1", msgs, reply=True))
    plain = json.loads(encode_batch("m1", "127.0.0.1:1", msgs))
    assert wants_reply(asking) and not wants_reply(plain) and not wants_reply([]) and not wants_reply(None)
    assert decode_batch(asking, "m2") == decode_batch(plain, "m2") == ("m1", "127.0.0.1:1", msgs)


def test_replies_from_the_peer_called_are_stepped():
    got: list = []
    ack = Message(MessageType.APP_RESP, "m1", "m2", 3, index=9)
    _transport(got)._take_reply("m2", encode_batch("m2", "127.0.0.1:2", [ack]))
    assert got == [("m2", [ack])]


def test_malformed_or_misaddressed_replies_are_dropped():
    got: list = []
    t = _transport(got)
    t._take_reply("m2", b"{not json")
    t._take_reply("m2", encode_batch("m3", "127.0.0.1:3", [Message(MessageType.APP_RESP, "m1", "m3", 3, index=9)]))
    t._take_reply("m2", encode_batch("m2", "127.0.0.1:2", [Message(MessageType.APP_RESP, "m4", "m2", 3, index=9)]))
    t._take_reply("m2", encode_batch("m2", "127.0.0.1:2", []))
    assert got == []

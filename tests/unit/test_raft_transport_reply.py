"""Replies in the response of a Raft message batch: the request asks for them, and the
sender steps only well-formed replies from the peer it called, addressed to itself."""
from __future__ import annotations

import asyncio
import json

from aiohttp import web

from metadata.raft import Message, MessageType
from metadata.replication import wire
from metadata.replication.transport import (
    SENDERS_PER_PEER, RaftTransport, decode_batch, encode_batch, wants_reply,
)
from objstore import internal_auth


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


async def test_batches_travel_signed_on_kept_alive_connections_and_their_replies_are_stepped():
    seen: list[tuple[bool, bool, int]] = []  # (signature ok, body ok, client port) per request
    replay = internal_auth.ReplayGuard()

    async def post_messages(request: web.Request) -> web.Response:
        body = await request.read()
        signed = internal_auth.verify_headers("secret", "POST", request.raw_path, request.headers,
                                              target=request.host, replay=replay)
        tag = request.headers.get(internal_auth.BODY_HEADER, "")
        seen.append((signed, internal_auth.body_matches(tag, len(body), body),
                     request.transport.get_extra_info("peername")[1]))
        assert request.content_type == wire.CONTENT_TYPE  # batches travel in binary
        frm, _, msgs, reply = wire.decode(body, "m2")
        assert frm == "m1" and reply
        acks = [Message(MessageType.APP_RESP, "m1", "m2", 3, index=m.index) for m in msgs]
        return web.Response(body=encode_batch("m2", "127.0.0.1:2", acks), content_type="application/json")

    app = web.Application()
    app.router.add_post("/raft/messages", post_messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    got: list = []
    t = RaftTransport("m1", "127.0.0.1:1", "secret", lambda _: f"127.0.0.1:{port}", lambda _: None,
                      lambda *_: None, on_reply=lambda frm, msgs: got.append((frm, [m.index for m in msgs])))
    try:
        for i in range(1, 7):
            t.send([Message(MessageType.APP, "m2", "m1", 3, index=i, commit=i)])
            for _ in range(200):
                if len(got) == i:
                    break
                await asyncio.sleep(0.01)
        assert got == [("m2", [i]) for i in range(1, 7)]
        assert all(signed and body_ok for signed, body_ok, _ in seen) and len(seen) == 6
        assert len({port for _, _, port in seen}) <= SENDERS_PER_PEER  # connections are reused
    finally:
        await t.close()
        await runner.cleanup()


async def test_a_sender_survives_a_peer_with_a_malformed_address():
    """A peer whose address cannot be opened (a bad port) is unreachable, like one that does
    not answer: its senders stay, and deliver once the address is right."""
    delivered: list[int] = []

    async def post_messages(request: web.Request) -> web.Response:
        _, _, msgs, _ = wire.decode(await request.read(), "m2")
        delivered.extend(m.index for m in msgs)
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_post("/raft/messages", post_messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    address = {"m2": "127.0.0.1:notaport"}
    unreachable: list[str] = []
    t = RaftTransport("m1", "127.0.0.1:1", "secret", address.get, unreachable.append, lambda *_: None)
    try:
        for bad in ("127.0.0.1:notaport", "127.0.0.1:70000"):
            address["m2"] = bad
            before = len(unreachable)
            t.send([Message(MessageType.HEARTBEAT, "m2", "m1", 3)])
            for _ in range(200):
                if len(unreachable) > before:
                    break
                await asyncio.sleep(0.01)
            assert unreachable[before:] == ["m2"]
        assert not any(task.done() for task in t._peers["m2"].tasks)
        address["m2"] = f"127.0.0.1:{port}"
        t.send([Message(MessageType.APP, "m2", "m1", 3, index=5, commit=5)])
        for _ in range(200):
            if delivered:
                break
            await asyncio.sleep(0.01)
        assert delivered == [5]
    finally:
        await t.close()
        await runner.cleanup()


def test_a_reply_nested_too_deep_to_decode_is_dropped():
    got: list = []
    _transport(got)._take_reply("m2", b"[" * 200_000)
    assert got == []

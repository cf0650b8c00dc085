"""HTTP routes of a Raft metadata node (beside the API of :mod:`metadata.app`).

    POST /raft/messages     {"v": 1, "from": id, "address": "h:p", "messages": [...][, "reply": true]}
                            -> {} or, with "reply", a batch of this node's answers to the
                            sender ({"v": 1, "from": us, "messages": [...]}, see
                            RaftReplicator.step_and_reply)
    POST /raft/snapshot     ?msg=<SNAP message JSON>&offset=&total=&done=0|1, body: bytes
    POST /raft/lost         {"v": 1, "from": id, "last_index": n}: a recovering follower's log
                            ends before what the leader believes (the leader hands over)
    POST /v1/raft/members   {"op": "add", "id", "address"} | {"op": "remove", "id"}
                            | {"op": "transfer", "id"}       (on the leader; NotLeader elsewhere)
    POST /debug/partition   {"drop_to": [ids], "drop_from": [ids]}  (only with
                            --enable-fault-injection; isolates this node from those peers)

Every route is behind the cluster-secret middleware (:mod:`objstore.http_common`), so an
unauthenticated request is refused with 403 before it gets here. A malformed message
batch is refused as a whole with 400 before any message is stepped: nothing changes.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from aiohttp import web

from metadata import latency_trace
from metadata.raft.messages import Message, MessageType
from metadata.replication import membership, wire
from metadata.replication.driver import RaftReplicator, with_snapshot_data
from metadata.replication.transport import decode_batch, encode_batch, wants_reply
from objstore.errors import InvalidArgument, InvalidRequest, ServiceUnavailable

RepOf = Callable[[web.Request], Any]


def _raft(rep_of: RepOf, request: web.Request) -> RaftReplicator:
    rep = rep_of(request)
    if not isinstance(rep, RaftReplicator):
        raise InvalidRequest("this metadata node runs without Raft (no --peers)")
    return rep


async def _json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError as exc:
        raise InvalidArgument(f"request body is not JSON: {exc}") from None


def _int_param(request: web.Request, name: str) -> int:
    try:
        v = int(request.query[name])
    except (KeyError, ValueError):
        raise InvalidArgument(f"query parameter {name} must be an integer") from None
    if v < 0:
        raise InvalidArgument(f"query parameter {name} must not be negative")
    return v


def add_routes(app: web.Application, rep_of: RepOf, fault_injection: bool) -> None:
    async def post_messages(request: web.Request) -> web.Response:
        rep = _raft(rep_of, request)
        raw = await request.read()
        binary = raw[:len(wire.MAGIC)] == wire.MAGIC  # a JSON batch starts with "{"
        if binary:
            frm, address, msgs, reply = wire.decode(raw, rep.id)
        else:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise InvalidArgument(f"request body is not JSON: {exc}") from None
            frm, address, msgs = decode_batch(body, rep.id)
            reply = wants_reply(body)
        if latency_trace.enabled:
            latency_trace.event("fH0", max((m.entries[-1].index for m in msgs if m.entries), default=0))
        if frm in rep.transport.drop_from:
            raise ServiceUnavailable(f"traffic from {frm} is dropped (fault injection)")
        if address:
            rep.sender_address(frm, address)
        if not reply:
            rep.step_messages(msgs)
            return web.json_response({})
        replies = await rep.step_and_reply(frm, msgs)
        latency_trace.event("fH1", len(replies))
        if not replies:
            return web.json_response({})
        if binary:  # answered in the form asked in; replies are all from us to the sender
            try:
                return web.Response(body=wire.encode(rep.id, rep.address, frm, replies), content_type=wire.CONTENT_TYPE)
            except ValueError:
                pass
        return web.Response(body=encode_batch(rep.id, rep.address, replies), content_type="application/json")

    async def post_snapshot(request: web.Request) -> web.Response:
        rep = _raft(rep_of, request)
        try:
            m = Message.decode(json.loads(request.query.get("msg", "")))
        except ValueError as exc:
            raise InvalidArgument(f"bad snapshot message: {exc}") from None
        if m.type is not MessageType.SNAP or m.snapshot is None or m.to != rep.id:
            raise InvalidArgument("expected a SNAP message for this node")
        if m.frm in rep.transport.drop_from:
            raise ServiceUnavailable(f"traffic from {m.frm} is dropped (fault injection)")
        done = request.query.get("done") == "1"
        path = await rep.receiver.chunk(m, _int_param(request, "offset"), _int_param(request, "total"), done,
                                        await request.read())
        if path is not None:
            rep.step_messages([with_snapshot_data(m, path)])
        return web.json_response({})

    async def post_lost(request: web.Request) -> web.Response:
        rep = _raft(rep_of, request)
        body = await _json(request)
        if (not isinstance(body, dict) or body.get("v") != 1 or not isinstance(body.get("from"), str)
                or type(body.get("last_index")) is not int or body["last_index"] < 0):
            raise InvalidArgument('expected {"v": 1, "from": id, "last_index": n}')
        if body["from"] in rep.transport.drop_from:
            raise ServiceUnavailable(f"traffic from {body['from']} is dropped (fault injection)")
        return web.json_response({"transfer_to": membership.hand_over_for(rep, body["from"], body["last_index"])})

    async def post_members(request: web.Request) -> web.Response:
        rep = _raft(rep_of, request)
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise InvalidArgument('expected {"op": "add"|"remove"|"transfer", "id": ..., ["address": ...]}')
        op, nid = body.get("op"), body["id"]
        if op == "add":
            if not isinstance(body.get("address"), str):
                raise InvalidArgument("adding a member needs its address (host:port)")
            result = await membership.add_member(rep, nid, body["address"])
        elif op == "remove":
            result = await membership.remove_member(rep, nid)
        elif op == "transfer":
            result = await membership.transfer_leader(rep, nid)
        else:
            raise InvalidArgument(f"unknown membership operation {op!r}")
        return web.json_response(result)

    async def post_partition(request: web.Request) -> web.Response:
        rep = _raft(rep_of, request)
        body = await _json(request)
        if not isinstance(body, dict):
            raise InvalidArgument('expected {"drop_to": [...], "drop_from": [...]}')
        for key in ("drop_to", "drop_from"):
            ids = body.get(key, [])
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise InvalidArgument(f"{key} must be a list of node ids")
        rep.transport.drop_to = set(body.get("drop_to", []))
        rep.transport.drop_from = set(body.get("drop_from", []))
        return web.json_response({"drop_to": sorted(rep.transport.drop_to),
                                  "drop_from": sorted(rep.transport.drop_from)})

    r = app.router
    r.add_post("/raft/messages", post_messages, name="raft_messages")
    r.add_post("/raft/snapshot", post_snapshot, name="raft_snapshot")
    r.add_post("/raft/lost", post_lost, name="raft_lost")
    r.add_post("/v1/raft/members", post_members, name="raft_members")
    if fault_injection:
        r.add_post("/debug/partition", post_partition, name="debug_partition")

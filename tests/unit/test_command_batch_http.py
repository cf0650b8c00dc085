"""``POST /v1/commands`` (metadata.command_batch_http) against a fake replicator: every
command is proposed before any is answered (so they share a Raft batch), a node that does
not lead refuses the whole call with NotLeader naming the leader, and a command whose
proposal fails (leadership lost midway) gets that error as its own result."""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from metadata.api import commands as c
from metadata.api.commands import Outcome, command_to_dict
from metadata.command_batch_http import add_routes
from objstore.config import MetadataConfig
from objstore.errors import NotLeader, ObjstoreError
from objstore.http_common import error_response


class FakeReplicator:
    def __init__(self, leader: bool = True) -> None:
        self.leader = leader
        self.proposed: list[str] = []
        self.release = asyncio.Event()

    def is_leader(self) -> bool:
        return self.leader

    def not_leader(self) -> NotLeader:
        return NotLeader("not the leader", leader="10.0.0.2:9000")

    async def propose(self, cmd: c.Command) -> Outcome:
        self.proposed.append(cmd.name)  # type: ignore[attr-defined]
        await self.release.wait()
        if cmd.name == "lost":  # type: ignore[attr-defined]
            raise NotLeader("leadership lost")
        return Outcome(value={"name": cmd.name})  # type: ignore[attr-defined]


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ObjstoreError as err:
        return error_response(err)


async def serve(rep: FakeReplicator) -> TestClient:
    app = web.Application(middlewares=[errors])
    cfg = MetadataConfig(node_id="m1", data_dir="/nonexistent", secret="s", default_policy="replica:3")
    add_routes(app, lambda _: rep, lambda _: cfg)  # type: ignore[arg-type, return-value]
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def body(*names: str) -> dict[str, Any]:
    return {"commands": [command_to_dict(c.CreateBucket(n, "o", "", 1.0).with_session("x/1", i + 1, 1))
                         for i, n in enumerate(names)]}


async def test_all_commands_are_proposed_before_any_answer_and_errors_stay_per_command():
    rep = FakeReplicator()
    client = await serve(rep)
    try:
        call = asyncio.ensure_future(client.post("/v1/commands", json=body("a", "lost", "b")))
        for _ in range(200):
            if len(rep.proposed) == 3:
                break
            await asyncio.sleep(0.01)
        assert rep.proposed == ["a", "lost", "b"] and not call.done()
        rep.release.set()
        resp = await call
        results = (await resp.json())["results"]
        assert resp.status == 200
        assert results[0] == {"value": {"name": "a"}} and results[2] == {"value": {"name": "b"}}
        assert results[1]["error"]["code"] == "NotLeader"
    finally:
        await client.close()


async def test_a_follower_refuses_the_whole_batch_naming_the_leader():
    rep = FakeReplicator(leader=False)
    client = await serve(rep)
    try:
        resp = await client.post("/v1/commands", json=body("a", "b"))
        answer = await resp.json()
        assert resp.status == 503 and answer["code"] == "NotLeader"
        assert answer["extra"]["leader"] == "10.0.0.2:9000"
        assert rep.proposed == []
    finally:
        await client.close()


class BatchReplicator(FakeReplicator):
    """A replicator that proposes a whole batch itself (as RaftReplicator.propose_all)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[Any]] = []

    async def propose_all(self, cmds: list[Any]) -> list[Any]:
        self.batches.append(cmds)
        return [cmd if isinstance(cmd, ObjstoreError) else
                NotLeader("leadership lost") if cmd.name == "lost" else Outcome(value={"name": cmd.name})
                for cmd in cmds]


async def test_a_replicator_that_proposes_batches_gets_the_whole_call_with_refused_commands_in_place():
    rep = BatchReplicator()
    client = await serve(rep)
    try:
        commands = body("a", "lost")["commands"]
        commands.insert(1, {"v": 1, "type": "DeleteBucket", "args": {"name": 5}})  # refused by the route
        resp = await client.post("/v1/commands", json={"commands": commands})
        results = (await resp.json())["results"]
        assert resp.status == 200 and len(rep.batches) == 1 and rep.proposed == []
        assert [getattr(x, "name", None) for x in rep.batches[0]] == ["a", None, "lost"]
        assert results[0] == {"value": {"name": "a"}}
        assert results[1]["error"]["code"] == "InvalidArgument" and results[2]["error"]["code"] == "NotLeader"
    finally:
        await client.close()

"""``call_leader`` on two local HTTP servers (a follower answering NotLeader naming the
leader, and the leader): the NotLeader hint is followed, and with a ``LeaderHint`` the
member that answered last is asked first, so a polling caller stops going through the
follower."""
from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from objstore.node.register import LeaderHint, call_leader


def test_the_member_that_answered_last_is_asked_first() -> None:
    calls = {"follower": 0, "leader": 0}
    leader_address = ""

    async def follower(request: web.Request) -> web.Response:
        calls["follower"] += 1
        return web.json_response({"code": "NotLeader", "extra": {"leader": leader_address}}, status=503)

    async def leader(request: web.Request) -> web.Response:
        calls["leader"] += 1
        return web.json_response({"tasks": []})

    def app(handler) -> web.Application:
        a = web.Application()
        a.router.add_post("/v1/repair/lease", handler)
        return a

    async def go() -> None:
        nonlocal leader_address
        async with TestServer(app(follower), host="127.0.0.1") as f, TestServer(app(leader), host="127.0.0.1") as lead:
            leader_address = f"127.0.0.1:{lead.port}"
            members = [f"127.0.0.1:{f.port}", leader_address]
            async with aiohttp.ClientSession() as session:
                for _ in range(3):  # without a hint: the follower first every time
                    assert await call_leader(session, members, "secret", None, "/v1/repair/lease", {}) == {"tasks": []}
                assert calls == {"follower": 3, "leader": 3}
                hint = LeaderHint()
                for _ in range(3):
                    await call_leader(session, members, "secret", None, "/v1/repair/lease", {}, hint)
                assert calls == {"follower": 4, "leader": 6} and hint.address == leader_address

    asyncio.run(go())

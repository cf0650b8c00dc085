"""Repair reports reach the metadata leader, signed, through NotLeader hints; the queue is
bounded and retries with backoff (a small aiohttp server stands in for the metadata nodes)."""
from __future__ import annotations

import asyncio
import random
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from objstore import internal_auth
from objstore.errors import ServiceUnavailable
from objstore.node.repair_report import REPORT_PATH, ReportQueue, metadata_sender, report
from tests.harness.serve import serve_on_loopback

SECRET = "report-secret"
REPORT = {"bucket": "b", "key": "k", "version_id": "v1", "part": 0, "shard": 2, "node_id": "s1", "reason": "corrupt"}


class MetadataNode:
    """``POST /v1/repair/report`` answering from a script, checking every signature."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, dict]] = []
        self.received: list[dict] = []
        self.address = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> "MetadataNode":
        guard = internal_auth.ReplayGuard()

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            if not (internal_auth.verify_headers(SECRET, "POST", request.raw_path, request.headers,
                                                 target=request.host, replay=guard)
                        and internal_auth.body_matches(request.headers.get(internal_auth.BODY_HEADER, ""),
                                                   request.content_length, body)):
                return web.json_response({"code": "AccessDenied", "message": "", "extra": {}}, status=403)
            payload = await request.json()
            self.received.append(payload)
            status, reply = self.replies.pop(0) if self.replies else (200, {"accepted": len(payload["reports"])})
            return web.json_response(reply, status=status)

        app = web.Application()
        app.router.add_post(REPORT_PATH, handle)
        self._runner, self.address = await serve_on_loopback(app)
        return self

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[MetadataNode, MetadataNode]]:
    a, b = await MetadataNode().start(), await MetadataNode().start()
    yield a, b
    await a.stop()
    await b.stop()


async def test_report_follows_the_leader_hint_and_is_signed(nodes) -> None:
    follower, leader = nodes
    follower.replies = [(503, {"code": "NotLeader", "message": "", "extra": {"leader": leader.address}})]
    async with aiohttp.ClientSession() as session:
        await report(session, [follower.address], SECRET, None, [REPORT])
    assert leader.received == [{"reports": [REPORT]}] and len(follower.received) == 1


async def test_report_with_a_wrong_secret_is_refused(nodes) -> None:
    leader, _ = nodes
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ServiceUnavailable):
            await report(session, [leader.address], "not-the-secret", None, [REPORT])
    assert leader.received == []


async def test_report_tries_every_address_then_fails(nodes) -> None:
    a, b = nodes
    a.replies = [(500, {"code": "InternalError", "message": "busy", "extra": {}})]
    b.replies = [(404, {"code": "NotFound", "message": "", "extra": {}})]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ServiceUnavailable):
            await report(session, [a.address, b.address], SECRET, None, [REPORT])
    assert len(a.received) == len(b.received) == 1


async def test_queue_retries_with_backoff_then_delivers(nodes) -> None:
    leader, _ = nodes
    leader.replies = [(500, {"code": "InternalError", "message": "", "extra": {}})] * 2
    sleeps: list[float] = []

    async def fake_sleep(d: float) -> None:
        sleeps.append(d)

    async with aiohttp.ClientSession() as session:
        q = ReportQueue(metadata_sender(session, [leader.address], SECRET, None), batch=2, sleep=fake_sleep,
                        rng=random.Random(1))
        for i in range(3):
            assert q.add({**REPORT, "version_id": f"v{i}"})
        task = asyncio.get_running_loop().create_task(q.run())
        try:
            for _ in range(200):
                if q.sent == 3:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert q.status() == {"queued": 0, "sent": 3, "failed_attempts": 2, "dropped": 0}
    assert [len(r["reports"]) for r in leader.received] == [2, 2, 2, 1]  # two failures, then the two batches
    assert len(sleeps) == 2 and 0.25 <= sleeps[0] < 0.75 and 0.5 <= sleeps[1] < 1.5  # doubled, with jitter


async def test_queue_is_bounded_and_gives_up_after_its_attempts() -> None:
    calls: list[int] = []

    async def failing(batch: list[dict]) -> None:
        calls.append(len(batch))
        raise ServiceUnavailable("down")

    async def no_sleep(d: float) -> None:
        return None

    q = ReportQueue(failing, limit=3, batch=10, attempts=4, sleep=no_sleep)
    assert [q.add(REPORT) for _ in range(5)] == [True, True, True, False, False]
    assert not await q.send_batch()
    assert calls == [3, 3, 3, 3]
    assert q.status() == {"queued": 0, "sent": 0, "failed_attempts": 4, "dropped": 5}

"""Garbage collection's side of the metadata service: the commit-age guard's stamp, and
the check storage nodes send their blobs to.

    POST /v1/gc/check  {"refs": [[bucket, key, version_id, shard(, created)], ...], "node": id}
                       (at most MAX_REFS; with "node", a record references a blob only
                       when it places it on that node: metadata.fsm.references)
                       -> {"status": ["referenced" | "young" | "orphan", ...], "gc_floor": F}

The leader first commits ``MarkCollectable(now - gc_grace/2)`` through Raft (unless this
process committed one less than ``MARK_REUSE`` seconds ago: a pass of many batches costs
one log entry a second, not one per batch), then answers from state that includes it
(:mod:`metadata.fsm.references`). A node deletes only the blobs answered ``orphan``.

Why no commit can reference a collected blob: an orphan's version id is older than the
state machine's ``gc_floor`` at the time of the answer; ``gc_floor`` only rises, and the
state machine refuses every later PutObject or PutPart naming a blob older than it. This
holds whatever the clocks of the nodes, gateways and leaders say, and across leader
changes (the floor is in the log). Besides, each PutObject/PutPart is stamped by the
leader that proposes it with ``commit_floor = now - gc_grace/2`` (:func:`stamp`), so a
write whose data was stored longer ago than half the grace (a paused gateway, a slow
body) is refused even before any check ran: the storage nodes' own grace (the full
``gc_grace``, on their clocks) leaves the other half as margin. A refused write answers
S3 ``RequestTimeout`` (400) and the gateway deletes its blobs.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from aiohttp import web

from metadata.api import commands as c
from metadata.fsm.references import blob_status
from objstore.errors import InvalidArgument, ServiceUnavailable

MAX_REFS = 1000
MARK_REUSE = 1.0  # seconds a committed MarkCollectable serves later checks
Rep = Callable[[web.Request], Any]


def stamp(cmd: c.Command, gc_grace: float, now: float) -> c.Command:
    """``cmd`` with its commit-age floor set, for the commands that commit new blobs."""
    if gc_grace > 0 and isinstance(cmd, (c.PutObject, c.PutPart)):
        return dataclasses.replace(cmd, commit_floor=now - gc_grace / 2)
    return cmd


def _refs(body: Any) -> list[tuple[str, str, str, int, float]]:
    refs = body.get("refs") if isinstance(body, dict) else None
    if not isinstance(refs, list) or len(refs) > MAX_REFS:
        raise InvalidArgument(f'expected {{"refs": [[bucket, key, version_id, shard], ...]}}, at most {MAX_REFS}')
    out = []
    for r in refs:
        if not (isinstance(r, list) and len(r) in (4, 5) and all(isinstance(x, str) for x in r[:3])
                and isinstance(r[3], int) and (len(r) == 4 or isinstance(r[4], (int, float)))):
            raise InvalidArgument("a ref is [bucket, key, version_id, shard] or [..., created]")
        out.append((r[0], r[1], r[2], r[3], float(r[4]) if len(r) == 5 else 0.0))
    return out


def add_routes(app: web.Application, rep: Rep, gc_grace: float, clock: Callable[[], float] = time.time) -> None:
    marked = [float("-inf")]  # when this process last committed a MarkCollectable

    async def check(request: web.Request) -> web.Response:
        if gc_grace <= 0:
            raise ServiceUnavailable("garbage collection is off: the metadata service runs with --gc-grace 0")
        try:
            body = await request.json()
        except ValueError as exc:
            raise InvalidArgument(f"request body is not JSON: {exc}") from None
        refs = _refs(body)
        node = body.get("node") if isinstance(body.get("node"), str) else ""
        now = clock()
        if now - marked[0] >= MARK_REUSE or now < marked[0]:
            # A floor committed earlier is in the log for good: the read below includes it.
            (await rep(request).propose(c.MarkCollectable(now - gc_grace / 2))).raise_for_error()
            marked[0] = now
        floor = marked[0] - gc_grace / 2
        status = await rep(request).read(lambda f: [blob_status(f, b, k, v, node, created)
                                                    for b, k, v, _shard, created in refs])
        return web.json_response({"status": status, "gc_floor": floor})

    app.router.add_post("/v1/gc/check", check, name="gc_check")

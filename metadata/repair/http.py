"""The metadata node's repair routes (cluster-secret auth like every internal route).

    POST /v1/repair/report  {"reports": [DamageReport]}       -> {"accepted": n}
    POST /v1/repair/lease   {"node_id", "max"}                -> {"tasks": [RepairTask]}
    POST /v1/repair/commit  {"node_id", "task": RepairTask, "ok": bool, "copied_at": unix seconds}
                                                              -> RepairOutcome {"applied", "reason"}
    GET  /v1/repair/status                                    -> below-policy counts and progress
    GET  /v1/rebalance/status                                 -> misplaced counts, moves, rate, ETA

Only the leader serves them; other members answer 503 NotLeader naming it.
"""
from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

from objstore.repair_records import DamageReport, RepairTask
from metadata.repair.service import RepairService
from objstore.errors import InvalidArgument

MAX_REPORTS = 1_000  # per request
MAX_LEASE = 64


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        d = await request.json()
    except ValueError as exc:
        raise InvalidArgument(f"request body is not JSON: {exc}") from None
    if not isinstance(d, dict):
        raise InvalidArgument("expected a JSON object")
    return d


def add_routes(app: web.Application, service: Callable[[web.Request], RepairService]) -> None:
    """Register the repair routes; ``service(request)`` is the node's RepairService."""

    async def post_report(request: web.Request) -> web.Response:
        raw = (await _body(request)).get("reports")
        if not isinstance(raw, list):
            raise InvalidArgument('expected {"reports": [...]}')
        try:
            reports = [DamageReport.from_dict(r) for r in raw[:MAX_REPORTS]]
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        return web.json_response({"accepted": await service(request).report(reports)})

    async def post_lease(request: web.Request) -> web.Response:
        d = await _body(request)
        node_id, count = d.get("node_id"), d.get("max", 1)
        if not isinstance(node_id, str) or not isinstance(count, int) or isinstance(count, bool):
            raise InvalidArgument('expected {"node_id": str, "max": int}')
        tasks = await service(request).lease(node_id, min(count, MAX_LEASE))
        return web.json_response({"tasks": [t.to_dict() for t in tasks]})

    async def post_commit(request: web.Request) -> web.Response:
        d = await _body(request)
        try:
            task = RepairTask.from_dict(d["task"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"malformed task: {exc}") from None
        if task.target != d.get("node_id"):
            raise InvalidArgument("a task is committed by its target node")
        copied_at = d.get("copied_at", 0.0)
        if isinstance(copied_at, bool) or not isinstance(copied_at, (int, float)):
            raise InvalidArgument("copied_at is unix seconds")
        outcome = await service(request).commit(task, bool(d.get("ok")), float(copied_at))
        return web.json_response(outcome.to_dict())

    async def get_status(request: web.Request) -> web.Response:
        return web.json_response(await service(request).status())

    async def get_rebalance_status(request: web.Request) -> web.Response:
        return web.json_response(await service(request).rebalance_status())

    r = app.router
    r.add_get("/v1/rebalance/status", get_rebalance_status, name="rebalance_status")
    r.add_post("/v1/repair/report", post_report, name="repair_report")
    r.add_post("/v1/repair/lease", post_lease, name="repair_lease")
    r.add_post("/v1/repair/commit", post_commit, name="repair_commit")
    r.add_get("/v1/repair/status", get_status, name="repair_status")

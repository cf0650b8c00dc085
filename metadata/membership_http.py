"""The metadata node's membership routes (cluster-secret auth like every internal route).

    GET  /v1/nodes                          -> {"epoch", "widest_policy", "needed", "nodes":
                                                [health row + address, zone, weight, keys,
                                                 upload_parts (of uploads in progress)]}
    POST /v1/nodes/change {"node", "op": "add"|"drain"|"remove", "force": bool}
                                            -> {"node", "from", "state", "cluster_map"}
    POST /v1/nodes/weight {"node", "weight"} -> {"node", "weight", "cluster_map"}
    GET  /v1/nodes/ok-to-stop?node=N        -> 200 {"ok": true, ...} | 412 {"ok": false, ...}
                                               (``&answer=always``: 200 either way, for the CLI)

Only the leader serves them (the checks read its state, the heartbeat ages are its own);
others answer 503 NotLeader naming it. The guards are :mod:`metadata.membership`; a change
is proposed as ``SetNodeState(node, state, if_state=<the state checked>, min_writable=<the
up nodes the widest policy needs>)``, so a change made meanwhile (by the liveness monitor or
another operator) makes it a no-op, reported as a refusal (with the guard's own message when
a guard now refuses it). Changes are checked and proposed one at a time on the leader (a
lock held from the check until the command applied), so the space guard of a second drain
sees the first one draining; the up-node guard is decided again on apply, in the log's
order, so it holds across a leader change too.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

from aiohttp import web

from metadata import membership, node_health
from metadata.api import commands as c
from metadata.fsm.machine import MetadataFSM
from objstore.errors import InvalidArgument, InvalidRequest
from objstore.types import ClusterMap

Rep = Callable[[web.Request], Any]


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        d = await request.json()
    except ValueError as exc:
        raise InvalidArgument(f"request body is not JSON: {exc}") from None
    if not isinstance(d, dict) or not isinstance(d.get("node"), str):
        raise InvalidArgument('expected a JSON object with "node"')
    return d


def add_routes(app: web.Application, rep: Rep, default_policy: str) -> None:
    """Register the membership routes; ``rep(request)`` is the node's Replicator."""

    def unavailable(request: web.Request) -> set[str]:
        live = request.app[node_health.LIVENESS]
        timeout = live.monitor.settings.node_timeout
        return {n for n, age in live.monitor.heartbeat_ages(live.clock()).items() if age > timeout}

    async def get_nodes(request: web.Request) -> web.Response:
        health = await request.app[node_health.LIVENESS].health()  # NotLeader on a follower

        def read(fsm: MetadataFSM) -> tuple[dict[str, int], dict[str, int], tuple[int, str], ClusterMap]:
            keys = {n: sum(len(k) for k in b.values()) for n, b in fsm.placements.by_node.items()}
            parts = {n: fsm.uploads.part_count_on(n) for n in fsm.uploads.by_node}
            return keys, parts, membership.widest_policy(fsm, default_policy), fsm.cluster_map()

        keys, parts, (needed, policy), cmap = await rep(request).read(read)
        for row in health["nodes"]:
            node = cmap.node(row["node_id"])
            if node is not None:
                row.update(address=node.address, zone=node.zone, weight=node.weight)
            row["keys"] = keys.get(row["node_id"], 0)
            row["upload_parts"] = parts.get(row["node_id"], 0)
        return web.json_response({**health, "widest_policy": policy, "needed": needed})

    changing = asyncio.Lock()  # one membership change checked and applied at a time

    async def post_change(request: web.Request) -> web.Response:
        d = await _body(request)
        node, op, force = d["node"], str(d.get("op")), bool(d.get("force", False))
        r = rep(request)
        if not r.is_leader():
            raise r.not_leader()
        monitor = request.app[node_health.LIVENESS].monitor

        def check(fsm: MetadataFSM) -> tuple[str, int]:
            used, free = monitor.used_bytes(), monitor.free_bytes()
            return (membership.check_change(fsm, node, op, force, default_policy, used, free),
                    membership.min_writable(fsm, op, default_policy))

        async with changing:
            was, keep = await r.read(check)
            to = membership.TARGET_STATE[op]
            cmd = c.SetNodeState(node, to, if_state=was, min_writable=keep)
            cmap: ClusterMap = (await r.propose(cmd)).result(c.SetNodeState)
            now = cmap.node(node)
            if now is None or now.state != to:
                await r.read(check)  # a guard that refuses now says why
                raise InvalidRequest(f"node {node} changed state meanwhile (now {now.state if now else 'gone'}); "
                                     f"try again")
        return web.json_response({"node": node, "from": was, "state": to, "cluster_map": cmap.to_dict()})

    async def post_weight(request: web.Request) -> web.Response:
        d = await _body(request)
        weight = d.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise InvalidArgument('expected {"node": str, "weight": number}')
        r = rep(request)
        if not r.is_leader():
            raise r.not_leader()
        cmap = (await r.propose(c.SetNodeWeight(d["node"], float(weight)))).result(c.SetNodeWeight)
        return web.json_response({"node": d["node"], "weight": float(weight), "cluster_map": cmap.to_dict()})

    async def get_ok_to_stop(request: web.Request) -> web.Response:
        node = request.query.get("node")
        if not node:
            raise InvalidArgument("missing query parameter 'node'")
        r = rep(request)
        if not r.is_leader():
            raise r.not_leader()
        down = unavailable(request)
        answer = await r.read(lambda fsm: membership.ok_to_stop(fsm, node, down))
        status = 200 if answer.ok or request.query.get("answer") == "always" else 412
        return web.json_response(answer.to_dict(), status=status)

    router = app.router
    router.add_get("/v1/nodes", get_nodes, name="list_nodes")
    router.add_post("/v1/nodes/change", post_change, name="change_node")
    router.add_post("/v1/nodes/weight", post_weight, name="set_node_weight")
    router.add_get("/v1/nodes/ok-to-stop", get_ok_to_stop, name="ok_to_stop")

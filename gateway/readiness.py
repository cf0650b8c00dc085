"""``/health/ready`` of the gateway: it can serve when it reaches the metadata service (a
leader answers for the cluster map) and at least one storage node of that map answers.

Each probe is bounded by ``PROBE_TIMEOUT``, so a readiness check never hangs.
"""
from __future__ import annotations

import asyncio

from gateway.context import GatewayContext

PROBE_TIMEOUT = 2.0


async def gateway_ready(ctx: GatewayContext) -> tuple[bool, str]:
    """(True, "") when it can serve, else (False, why)."""
    try:
        cmap = await asyncio.wait_for(ctx.meta.get_cluster_map(), PROBE_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure means: not ready
        return False, f"metadata service unreachable: {type(exc).__name__}"
    answers = await asyncio.gather(*(asyncio.wait_for(ctx.storage.stats(n.address), PROBE_TIMEOUT)
                                     for n in cmap.nodes), return_exceptions=True)
    if any(not isinstance(a, BaseException) for a in answers):
        return True, ""
    return False, "no storage node reachable"

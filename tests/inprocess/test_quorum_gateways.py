"""Quorum reads with several gateways while the ring changes: the rings not yet handed
over live in the cluster map (gateway.ring_epochs), so a gateway that has not adopted the
new map cannot acknowledge a write placed by the old ring alone once another gateway has
handed that ring over; a later quorum read by the new ring alone sees it."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from gateway.app import HANDLER_ARGS
from gateway.app import create_app as create_gateway
from gateway.context import CTX_KEY, GatewayContext
from objstore.config import GatewayConfig
from objstore.ring import build_ring
from tests.harness.cluster import ACCESS_KEY, HOST, SECRET, SECRET_KEY, InProcessCluster, Server
from tests.harness.eventually import eventually_async
from tests.inprocess.test_consistency import BUCKET, get, manifests_on, put


@dataclass
class Gateway:
    """Another gateway of an in-process cluster, with what ``put``/``get`` need of one."""

    server: Server
    s3_client: Any

    @property
    def ctx(self) -> GatewayContext:
        return self.server.app[CTX_KEY]

    async def s3(self, operation: str, **params: Any) -> Any:
        return await asyncio.to_thread(getattr(self.s3_client, operation), **params)


async def start_gateway(c: InProcessCluster, gateway_id: str) -> Gateway:
    cfg = GatewayConfig(gateway_id=gateway_id, secret=SECRET, metadata=(c.meta_address,), host=HOST, port=0,
                        default_policy=c.default_policy, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    server = await Server(create_gateway(cfg), **HANDLER_ARGS).start()
    client = boto3.client("s3", endpoint_url=f"http://{server.address}", aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    gw = Gateway(server, client)
    await gw.ctx.topology.refresh()
    return gw


async def lagging_gateway(c: InProcessCluster) -> Gateway:
    """A second gateway that stops following the cluster map (it adopts a newer one only
    when it fetches it itself)."""
    gw = await start_gateway(c, "gw2")
    await gw.ctx.topology.stop()
    return gw


async def written_everywhere(c: InProcessCluster, key: str, index: int, nodes: tuple[str, ...]) -> None:
    async def there() -> bool:
        on = await manifests_on(c, key)
        return all(on.get(n) == index for n in nodes)

    await eventually_async(there, 10.0, message=f"manifest {index} of {key} on {nodes}")


async def old_value_and_a_lagging_gateway(c: InProcessCluster) -> tuple[tuple[str, ...], int, Gateway]:
    """Key "k" written ("old") on its owners a, b, c under the current ring, and a second
    gateway that lags the map: ((a, b, c, d: a fourth node), the write's commit index, gw2)."""
    await c.s3("create_bucket", Bucket=BUCKET)
    a, b, cc = build_ring(c.ctx.topology.map).locate(BUCKET, "k", 3)
    d = next(n for n in c.nodes if n not in (a, b, cc))
    old = int((await put(c, "k", b"old"))["x-objstore-commit-index"])
    await written_everywhere(c, "k", old, (a, b, cc))
    return (a, b, cc, d), old, await lagging_gateway(c)


async def drain_and_hand_over(c: InProcessCluster, node_id: str) -> None:
    """Drain ``node_id``; the first gateway adopts the map and hands the old ring over
    (committed through the metadata service: every gateway drops it with the next map)."""
    await c.meta.set_node_state(node_id, "draining")
    await c.ctx.topology.refresh()

    async def handed_over() -> bool:
        return not (await c.meta.get_cluster_map()).kept_rings and not c.ctx.rings.old()

    await eventually_async(handed_over, 20.0, message="the old ring to be handed over")


async def test_a_lagging_gateways_write_committed_after_the_hand_over_is_seen_by_the_new_ring(tmp_path):
    """Owners a, b, c under the old ring; gw2 has not adopted the map in which a is drained
    (new owners b, c, d) and gw1 has already handed the old ring over. gw2's write (c away)
    would reach a and b by the old ring; its commit reports the newer map, so gw2 adopts it
    and places the manifest by the new ring before answering. With b away, a quorum read
    by the new ring alone (c, d) must serve it."""
    async with InProcessCluster(tmp_path / "c", storage_nodes=4) as c:
        (a, b, cc, d), old, gw2 = await old_value_and_a_lagging_gateway(c)
        try:
            await drain_and_hand_over(c, a)
            assert (await manifests_on(c, "k"))[d] == old
            lagging_epoch = gw2.ctx.topology.map.epoch
            await c.nodes[cc].down()
            new = await put(gw2, "k", b"new")  # type: ignore[arg-type]
            assert gw2.ctx.topology.map.epoch > lagging_epoch  # it adopted the map its commit reported
            await c.nodes[cc].up()
            await c.nodes[b].down()
            body, h = await get(c, "k", "quorum")
            assert body == b"new", "a quorum read by the new ring missed a lagging gateway's acknowledged write"
            assert h["x-objstore-commit-index"] == new["x-objstore-commit-index"]
        finally:
            await gw2.server.stop()


async def test_a_lagging_gateways_manifest_landing_after_the_hand_over_is_refused_and_placed_again(tmp_path):
    """gw2 commits before a is drained, and its manifest stores arrive only after gw1 handed
    the old ring over. The walked nodes' fences refuse stores placed by the old ring, so
    gw2 adopts the new map and places the manifest again before answering; a quorum read by
    the new ring alone (b away: c, d) serves it."""
    async with InProcessCluster(tmp_path / "c", storage_nodes=4) as c:
        (a, b, cc, d), old, gw2 = await old_value_and_a_lagging_gateway(c)
        entered, release = asyncio.Event(), asyncio.Event()
        real_put = gw2.ctx.storage.put_manifest

        async def held_put(address, manifest, *args, **kwargs):
            if manifest.key == "k":
                entered.set()
                await release.wait()
            return await real_put(address, manifest, *args, **kwargs)

        gw2.ctx.storage.put_manifest = held_put  # type: ignore[method-assign]
        try:
            writing = asyncio.ensure_future(put(gw2, "k", b"new"))  # type: ignore[arg-type]
            await asyncio.wait_for(entered.wait(), 20.0)  # committed; its manifest not yet stored
            await drain_and_hand_over(c, a)
            assert (await manifests_on(c, "k"))[d] == old
            await c.nodes[cc].down()
            release.set()
            new = await asyncio.wait_for(writing, 30.0)
            await c.nodes[cc].up()
            await c.nodes[b].down()
            body, h = await get(c, "k", "quorum")
            assert body == b"new", "a quorum read by the new ring missed a write whose manifest landed late"
            assert h["x-objstore-commit-index"] == new["x-objstore-commit-index"]
        finally:
            release.set()
            await gw2.server.stop()

"""Liveness in the cluster map, in one event loop: a stopped storage node becomes down, then
out; started again it is up; gateways learn each change by long poll; new writes (replicated
or erasure coded) avoid it at full width; a node short of space is full until it has room.

Short timers: node timeout 1 s, down-after 3 s, heartbeats every 0.2 s.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import aiohttp

from metadata.api.client import MetadataClient
from metadata.node_health import EPOCH_WATCH, LIVENESS
from objstore.config import StorageConfig
from objstore.node.heartbeat import HEARTBEAT_PATH, heartbeat_body
from objstore.node.register import post_until_accepted
from ops.cli.status import collect, render
from tests.harness.cluster import SECRET, InProcessCluster
from tests.harness.eventually import eventually_async

NODE_TIMEOUT, DOWN_AFTER, HEARTBEAT = 1.0, 3.0, 0.2


async def _state(cluster: InProcessCluster, node_id: str) -> str:
    cmap = await cluster.meta.get_cluster_map()
    node = cmap.node(node_id)
    return node.state if node else ""


def _in_state(cluster: InProcessCluster, node_id: str, state: str):  # noqa: ANN202 - a predicate
    async def check() -> bool:
        return await _state(cluster, node_id) == state
    return check


async def _every_node_up_and_heartbeating(cluster: InProcessCluster) -> None:
    """Wait out the start: with a 1 s node timeout, a loaded machine's start (its event loop
    blocked for seconds while the servers open) can see nodes marked down, and up again with
    their next heartbeat."""
    seen: list = []

    async def settled() -> bool:
        seen[:] = (await cluster.meta.node_health())["nodes"]
        return len(seen) == len(cluster.nodes) and all(
            h["state"] == "up" and h["heartbeat_age"] is not None and h["heartbeat_age"] < NODE_TIMEOUT for h in seen)

    await eventually_async(settled, 10.0, message=lambda: f"every storage node up and heartbeating: {seen}")


async def test_down_out_and_up_again_with_writes_avoiding_the_dead_node(tmp_path: Path) -> None:
    async with InProcessCluster(tmp_path / "c", storage_nodes=4, node_timeout=NODE_TIMEOUT, down_after=DOWN_AFTER,
                                heartbeat_interval=HEARTBEAT) as cluster:
        await _every_node_up_and_heartbeating(cluster)
        await cluster.s3("create_bucket", Bucket="live")
        health = await cluster.meta.node_health()
        assert {h["node_id"] for h in health["nodes"]} == {"s1", "s2", "s3", "s4"}
        assert all(h["state"] == "up" and h["heartbeat_age"] is not None and h["heartbeat_age"] < NODE_TIMEOUT
                   and h["free_bytes"] > 0 and h["capacity_bytes"] >= h["free_bytes"] for h in health["nodes"])
        start_epoch = cluster.ctx.topology.map.epoch
        # s1 is held at down while the test looks at it (twelve writes and a status take
        # longer than DOWN_AFTER on a loaded machine); its timer to out runs once that is done.
        monitor = cluster.metadata.app[LIVENESS].monitor
        assert monitor.settings.down_after == DOWN_AFTER
        monitor.settings = dataclasses.replace(monitor.settings, down_after=3600.0)

        victim = cluster.nodes["s1"]
        await victim.down()
        stopped = time.monotonic()
        await eventually_async(_in_state(cluster, "s1", "down"), NODE_TIMEOUT + 1.5, message="s1 to be marked down")
        # Not before its timeout, counted from its last heartbeat (at most one interval before it stopped).
        assert time.monotonic() - stopped >= NODE_TIMEOUT - HEARTBEAT - 0.05
        down_epoch = (await cluster.meta.get_cluster_map()).epoch
        assert down_epoch > start_epoch
        # The gateway's long poll brings the new map without a request asking for it.
        await eventually_async(lambda: cluster.ctx.topology.map.epoch >= down_epoch, 1.5,
                               message="the gateway to learn that s1 is down")

        # While s1 is down every new object goes to three other nodes (handoffs fill its slots).
        for i in range(12):
            await cluster.s3("put_object", Bucket="live", Key=f"k{i}", Body=b"x" * (100 + i))
            version = await cluster.meta.get_object("live", f"k{i}")
            assert len(version.placement) == 3 and "s1" not in version.placement, version.placement

        status = await collect([cluster.meta_address], SECRET)
        row = next(n for n in status["nodes"] if n["node_id"] == "s1")
        assert row["state"] == "down" and row["heartbeat_age"] >= NODE_TIMEOUT
        assert "down" in render(status)

        monitor.settings = dataclasses.replace(monitor.settings, down_after=DOWN_AFTER)
        await eventually_async(_in_state(cluster, "s1", "out"), DOWN_AFTER + 1.5, message="s1 to be marked out")

        await victim.up()
        await eventually_async(_in_state(cluster, "s1", "up"), 3.0, message="s1 to be up again")
        for i in range(3):  # every object written while it was away still reads back
            got = await cluster.s3("get_object", Bucket="live", Key=f"k{i}")
            assert got["Body"].read() == b"x" * (100 + i)


async def test_long_poll_answers_when_the_epoch_moves_and_at_its_timeout(tmp_path: Path) -> None:
    async with InProcessCluster(tmp_path / "c", storage_nodes=3) as cluster:
        epoch = (await cluster.meta.get_cluster_map()).epoch
        began = time.monotonic()
        unchanged = await cluster.meta.wait_cluster_map(epoch, 0.3)
        assert unchanged.epoch == epoch and time.monotonic() - began >= 0.25
        assert (await cluster.meta.wait_cluster_map(epoch - 1, 10)).epoch == epoch  # newer already: at once

        poll = asyncio.create_task(cluster.meta.wait_cluster_map(epoch, 10))
        await eventually_async(lambda: cluster.metadata.app[EPOCH_WATCH].waiting == 1, 2.0)
        assert not poll.done()
        await cluster.meta.set_node_state("s2", "draining")
        changed = await asyncio.wait_for(poll, 2.0)
        assert changed.epoch > epoch and changed.node("s2").state == "draining"

        # A poll still waiting when the node stops (as a gateway stopped first leaves it) is
        # answered with the map it has, not cut off when the node's request grace runs out.
        # The gateway holds a poll of its own: once it has the new map, its next poll waits.
        watch = cluster.metadata.app[EPOCH_WATCH]
        await eventually_async(lambda: cluster.ctx.topology.map.epoch == changed.epoch and watch.waiting == 1, 2.0,
                               message=lambda: f"the gateway's poll to wait again ({watch.waiting} waiting)")
        async with MetadataClient([cluster.meta_address], SECRET) as other:
            last = asyncio.create_task(other.wait_cluster_map(changed.epoch, 30))
            await eventually_async(lambda: watch.waiting == 2, 2.0, message=lambda: f"{watch.waiting} polls waiting")
            await cluster.stop()  # the metadata node last, as objstore up stops it
            assert (await last).epoch == changed.epoch


async def test_erasure_coded_writes_keep_full_width_and_shard_slots_while_a_node_is_down(tmp_path: Path) -> None:
    async with InProcessCluster(tmp_path / "c", storage_nodes=7, default_policy="ec:4+2", node_timeout=NODE_TIMEOUT,
                                heartbeat_interval=HEARTBEAT) as cluster:
        await _every_node_up_and_heartbeating(cluster)
        await cluster.s3("create_bucket", Bucket="coded")
        first = os.urandom(3 * 1024 * 1024 + 5)
        await cluster.s3("put_object", Bucket="coded", Key="k", Body=first)
        before = (await cluster.meta.get_object("coded", "k")).placement
        assert len(before) == 6 and "" not in before
        victim = before[2]
        await cluster.nodes[victim].down()
        await eventually_async(_in_state(cluster, victim, "down"), NODE_TIMEOUT + 1.5)
        await eventually_async(lambda: cluster.ctx.topology.node(victim).state == "down", 1.5)

        second = os.urandom(3 * 1024 * 1024 + 7)
        await cluster.s3("put_object", Bucket="coded", Key="k", Body=second)
        after = (await cluster.meta.get_object("coded", "k")).placement
        assert len(after) == 6 and "" not in after and victim not in after and len(set(after)) == 6
        # Only the down node's shard moved to a handoff; every other shard kept its node.
        assert [n for i, n in enumerate(after) if i != 2] == [n for i, n in enumerate(before) if i != 2]
        got = await cluster.s3("get_object", Bucket="coded", Key="k")
        assert await asyncio.to_thread(got["Body"].read) == second


async def test_a_node_short_of_space_is_full_until_it_has_room_again(tmp_path: Path) -> None:
    async with InProcessCluster(tmp_path / "c", storage_nodes=3, node_timeout=NODE_TIMEOUT,
                                heartbeat_interval=HEARTBEAT) as cluster:
        # A fourth node whose heartbeats the test sends itself, saying how much room it has.
        cfg = StorageConfig(node_id="s9", data_dir="/unused", secret=SECRET, zone="zone-a",
                            metadata=(cluster.meta_address,), advertise=cluster.nodes["s1"].address)
        free = 10  # of 1000 bytes: below the reserve of 5%

        async def heartbeats() -> None:
            async with aiohttp.ClientSession() as session:
                while True:
                    stats = {"capacity_bytes": 1000, "used_bytes": 1000 - free, "free_bytes": free, "blob_count": 0}
                    await post_until_accepted(cfg, HEARTBEAT_PATH, lambda: heartbeat_body(cfg, stats), session)
                    await asyncio.sleep(HEARTBEAT)

        beating = asyncio.create_task(heartbeats())
        try:
            await eventually_async(_in_state(cluster, "s9", "full"), 3.0, message="s9 to be full")
            await eventually_async(lambda: cluster.ctx.topology.node("s9").state == "full", 1.5)
            assert not cluster.ctx.topology.writable(cluster.ctx.topology.node("s9"))
            free = 500
            await eventually_async(_in_state(cluster, "s9", "up"), 3.0, message="s9 to be up with room again")
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
        await eventually_async(_in_state(cluster, "s9", "down"), NODE_TIMEOUT + 1.5, message="silent s9 to be down")

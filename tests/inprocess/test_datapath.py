"""The data path (replicated writes, reads with failover) against an in-process cluster.

Every test starts its own cluster (metadata, three storage nodes, gateway; replica:3, so
W=2) in the test's event loop, talks S3 to the gateway with boto3, and breaks storage
nodes through the harness: down, slow, or a byte flipped in a stored blob on disk.
"""
from __future__ import annotations

import asyncio
import logging
import os

import pytest

from objstore.node.app import METRICS
from tests.harness.cluster import InProcessCluster
from tests.harness.disk import files_holding

BUCKET = "data-path"
SMALL, LARGE = 5000, 3 * 1024 * 1024  # a body sent whole, a streamed body


def body_of(size: int) -> tuple[bytes, bytes]:
    """A random body of ``size`` bytes and the marker it starts with (to find it on disk)."""
    marker = os.urandom(32)
    return marker, marker + os.urandom(size - len(marker))


async def put(c: InProcessCluster, key: str, body: bytes) -> None:
    await c.s3("put_object", Bucket=BUCKET, Key=key, Body=body)


async def get(c: InProcessCluster, key: str) -> bytes:
    resp = await c.s3("get_object", Bucket=BUCKET, Key=key)
    return await asyncio.to_thread(resp["Body"].read)


def holders(c: InProcessCluster, marker: bytes) -> set[str]:
    """Ids of the nodes whose disk holds the blob starting with ``marker``."""
    return {n.node_id for n in c.nodes.values() if files_holding(n.data_dir, marker)}


@pytest.fixture
async def cluster_with_bucket(inproc: InProcessCluster) -> InProcessCluster:
    await inproc.s3("create_bucket", Bucket=BUCKET)
    return inproc


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_put_then_get_returns_the_bytes_from_three_replicas(cluster_with_bucket, size):
    c = cluster_with_bucket
    marker, body = body_of(size)
    await put(c, "k", body)
    assert await get(c, "k") == body
    assert holders(c, marker) == set(c.nodes)


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_put_with_one_of_three_replica_nodes_down_succeeds_and_reads_back(cluster_with_bucket, size):
    c = cluster_with_bucket
    await c.nodes["s1"].down()
    marker, body = body_of(size)
    await put(c, "k", body)  # W=2 of N=3
    assert await get(c, "k") == body
    assert holders(c, marker) == {"s2", "s3"}


@pytest.mark.parametrize("size", [SMALL, LARGE])  # read whole in one call, streamed
async def test_get_fails_over_when_the_first_replica_node_is_down(cluster_with_bucket, size):
    c = cluster_with_bucket
    _, body = body_of(size)
    await put(c, "k", body)
    first = (await c.replicas(BUCKET, "k"))[0]
    assert not c.ctx.topology.is_suspect(first.node_id)  # the read will try it first
    await first.down()
    assert await get(c, "k") == body
    assert c.ctx.topology.is_suspect(first.node_id)


@pytest.mark.parametrize("size", [SMALL, LARGE])  # a segment record, a blob file
async def test_get_with_the_first_replica_corrupt_on_disk_returns_the_right_bytes(cluster_with_bucket, size):
    c = cluster_with_bucket
    marker, body = body_of(size)
    await put(c, "k", body)
    first = (await c.replicas(BUCKET, "k"))[0]
    first.corrupt(marker)
    assert await get(c, "k") == body
    refused = first.server.app[METRICS].registry.get_sample_value("objstore_storage_corrupt_reads_total")
    assert refused == 1  # the damaged copy was read, and refused


async def test_a_node_dying_in_the_middle_of_a_get_fails_over_to_the_full_body(cluster_with_bucket, caplog):
    c = cluster_with_bucket
    caplog.set_level(logging.INFO, logger="gateway.datapath.reader")
    size = 16 * 1024 * 1024
    _, body = body_of(size)
    await put(c, "big", body)
    first = (await c.replicas(BUCKET, "big"))[0]
    first.slow(0.02)  # ~3 MB/s: the stream from it is still going when it dies
    resp = await c.s3("get_object", Bucket=BUCKET, Key="big")
    head = await asyncio.to_thread(resp["Body"].read, 1024 * 1024)
    await first.down()
    rest = await asyncio.to_thread(resp["Body"].read)
    assert head + rest == body
    failed_at = [r.args[3] for r in caplog.records if "failed at byte" in r.msg and r.args[2] == first.node_id]
    assert len(failed_at) == 1 and len(head) <= failed_at[0] < size  # resumed mid-stream, not restarted


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_a_slow_node_does_not_break_a_put(cluster_with_bucket, size):
    c = cluster_with_bucket
    c.nodes["s2"].slow(0.02)  # ~3 MB/s, every chunk of the PUT waits
    marker, body = body_of(size)
    await put(c, "k", body)
    assert holders(c, marker) == set(c.nodes)  # slow is not failed: the slow node has it too
    c.nodes["s2"].slow(0)
    assert await get(c, "k") == body


async def test_a_node_back_up_serves_what_it_stored_before_it_went_down(cluster_with_bucket):
    c = cluster_with_bucket
    _, body = body_of(LARGE)
    await put(c, "k", body)
    first, *others = await c.replicas(BUCKET, "k")
    await first.down()
    assert await get(c, "k") == body  # from the others, while it is down
    await first.up()
    for n in others:
        await n.down()
    assert await get(c, "k") == body  # only the restarted node is left to serve it

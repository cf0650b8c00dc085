"""Small PUTs against an in-process cluster (three storage nodes, replica:3): under
concurrency their blobs reach the nodes in fewer calls than blobs (``PUT /blobs/batch``)
and read back byte-identical; a batch call that fails fails its PUTs cleanly (503, no
object visible)."""
from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from objstore.node.app import HOT
from tests.harness.cluster import InProcessCluster

BUCKET = "blob-batch"
CONCURRENT = 16


def node_calls(c: InProcessCluster, op: str) -> float:
    """Requests of ``op`` the storage nodes answered (their request metrics)."""
    total = 0.0
    for n in c.nodes.values():
        assert n.server is not None
        for line in n.server.app[HOT].calls.metrics.render()[0].decode().splitlines():
            if line.startswith("objstore_requests_total{") and f'op="{op}"' in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


async def in_threads(c: InProcessCluster, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """boto3 calls, ``CONCURRENT`` at a time; each its result or its exception."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(CONCURRENT) as pool:
        futures = [loop.run_in_executor(pool, functools.partial(getattr(c.s3_client, op), **kw)) for op, kw in calls]
        return await asyncio.gather(*futures, return_exceptions=True)


@pytest.fixture
async def cluster(inproc: InProcessCluster) -> InProcessCluster:
    await inproc.s3("create_bucket", Bucket=BUCKET)
    for n in inproc.nodes.values():
        n.slow(0.002)  # calls overlap as they do under load
    return inproc


async def test_concurrent_small_puts_go_in_fewer_calls_than_blobs_and_read_back(cluster: InProcessCluster) -> None:
    c = cluster
    bodies = {f"k{i}": os.urandom(4096) for i in range(48)}
    results = await in_threads(c, [("put_object", {"Bucket": BUCKET, "Key": k, "Body": b}) for k, b in bodies.items()])
    assert not [r for r in results if isinstance(r, BaseException)]
    singles, batches = node_calls(c, "put_blob"), node_calls(c, "put_blob_batch")
    lanes = c.ctx.blob_lanes
    assert lanes.blobs == 3 * len(bodies)
    assert batches > 0 and singles + batches == lanes.calls < lanes.blobs
    for key, body in bodies.items():
        got = await c.s3("get_object", Bucket=BUCKET, Key=key)
        assert await asyncio.to_thread(got["Body"].read) == body


async def test_a_failed_batch_call_fails_its_puts_cleanly(cluster: InProcessCluster) -> None:
    c = cluster

    async def broken_disk(request: Any) -> Any:
        raise OSError(5, "Input/output error")

    for n in c.nodes.values():
        assert n.server is not None
        n.server.app[HOT].handlers["put_blob_batch"] = broken_disk
    bodies = {f"k{i}": os.urandom(4096) for i in range(32)}
    results = await in_threads(c, [("put_object", {"Bucket": BUCKET, "Key": k, "Body": b}) for k, b in bodies.items()])
    failed = [k for k, r in zip(bodies, results) if isinstance(r, BaseException)]
    assert failed and node_calls(c, "put_blob_batch") > 0
    for key, result in zip(bodies, results):
        if isinstance(result, BaseException):
            assert isinstance(result, ClientError)
            assert result.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            with pytest.raises(ClientError) as info:
                await c.s3("head_object", Bucket=BUCKET, Key=key)
            assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        else:
            got = await c.s3("get_object", Bucket=BUCKET, Key=key)
            assert await asyncio.to_thread(got["Body"].read) == bodies[key]
    listed = await c.s3("list_objects_v2", Bucket=BUCKET)
    assert {o["Key"] for o in listed.get("Contents", [])} == set(bodies) - set(failed)


async def test_nodes_without_the_batch_route_get_single_calls_and_every_put_succeeds(cluster: InProcessCluster) -> None:
    c = cluster
    from aiohttp import web

    async def no_such_route(request: Any) -> Any:
        raise web.HTTPNotFound()  # what a node older than the route answers

    for n in c.nodes.values():
        assert n.server is not None
        n.server.app[HOT].handlers["put_blob_batch"] = no_such_route
    bodies = {f"k{i}": os.urandom(4096) for i in range(32)}
    results = await in_threads(c, [("put_object", {"Bucket": BUCKET, "Key": k, "Body": b}) for k, b in bodies.items()])
    assert not [r for r in results if isinstance(r, BaseException)]
    refused = node_calls(c, "put_blob_batch")
    assert 1 <= refused <= len(c.nodes)  # at most once per node: then single calls for a minute
    assert node_calls(c, "put_blob") == 3 * len(bodies)
    for key, body in bodies.items():
        got = await c.s3("get_object", Bucket=BUCKET, Key=key)
        assert await asyncio.to_thread(got["Body"].read) == body


async def test_a_whole_body_that_is_not_the_size_declared_is_stored_nowhere(cluster: InProcessCluster) -> None:
    """A body held whole goes through the lanes only if it has the size the write declared
    (as a single write refuses it: IncompleteBody); otherwise no node stores it."""
    from gateway.datapath.replicate import write_replicas
    from objstore.errors import InsufficientReplicas
    from objstore.node.app import STORE

    c = cluster
    ctx = c.ctx
    nodes = await ctx.topology.place(BUCKET, "short", 3)

    async def short() -> Any:
        yield b"12345"

    with pytest.raises(InsufficientReplicas):
        await write_replicas(ctx.storage, ctx.topology, nodes, version_id="vshort", bucket=BUCKET, key="short",
                             policy="replica:3", size=10, chunks=short(), write_quorum=2, blobs=ctx.blob_lanes)
    for n in c.nodes.values():
        assert n.server is not None
        assert n.server.app[STORE].stats()["blob_count"] == 0

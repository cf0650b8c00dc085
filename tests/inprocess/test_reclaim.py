"""Reclaiming space in a whole in-process cluster (three storage nodes, replica:3, small
segments, a short GC grace): after overwrites and deletes, garbage collection and
compaction bring each node's disk back near its live data; aborted uploads and writes
that never committed leave no bytes; a commit arriving after its blobs could have been
collected is refused."""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from botocore.exceptions import ClientError

from gateway.datapath.write import write_blob
from metadata.api.upload_client import UploadClient
from objstore.node.app import STORE
from objstore.node.reclaim import COMPACTOR, GC
from objstore.types import Policy
from tests.harness.cluster import InProcessCluster
from tests.harness.disk import files_holding
from tests.harness.eventually import eventually_async

BUCKET = "reclaim"
GRACE = 2.0
SEGMENT = 64 * 1024


@pytest.fixture
async def rc(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    async with InProcessCluster(tmp_path / "cluster", gc_grace=GRACE, segment_bytes=SEGMENT) as c:
        await c.s3("create_bucket", Bucket=BUCKET)
        yield c


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.suffix in (".dat", ".blob"))


async def reclaim(c: InProcessCluster, threshold: float | None = None) -> None:
    """Wait out the grace, then collect and compact on every node (twice: tombstones freed
    by the first compaction go in the second)."""
    await asyncio.sleep(GRACE + 0.2)
    await c.collect_garbage()
    for n in c.nodes.values():
        if threshold is not None:
            n.server.app[COMPACTOR].threshold = threshold
    await c.compact()
    await c.compact()


async def until_no_node_holds(c: InProcessCluster, marker: bytes) -> None:
    """Wait until no node's files hold ``marker``. A delete is answered once its tombstone is
    durable; a blob in a file of its own is unlinked just after, in the background."""
    def holders() -> list[str]:
        return [n.node_id for n in c.nodes.values() if files_holding(n.data_dir, marker)]

    await eventually_async(lambda: not holders(), 10.0,
                           message=lambda: f"no node to hold the marker (held by {holders()})")


async def many(c: InProcessCluster, operation: str, calls: list[dict], threads: int = 12) -> None:
    """Run boto3 calls concurrently on threads of their own (the loop's default executor
    stays free for the services)."""
    loop = asyncio.get_running_loop()
    fn = getattr(c.s3_client, operation)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        await asyncio.gather(*(loop.run_in_executor(pool, functools.partial(fn, **kw)) for kw in calls))


async def churn(rc: InProcessCluster, n_small: int, rounds: int) -> None:
    """Thousands of small keys (half deleted) and a few keys overwritten many times (one of
    them deleted now and then), then reclaim: each node's disk ends within twice its live
    data (live records and the tombstones still needed) plus one segment."""
    small = {f"small/{i:05d}": os.urandom(100) for i in range(n_small)}
    await many(rc, "put_object", [dict(Bucket=BUCKET, Key=k, Body=b) for k, b in small.items()])
    hot = {}
    for round_ in range(rounds):
        for k in ("hot/a", "hot/b", "hot/c"):
            hot[k] = os.urandom(8 * 1024)
        await many(rc, "put_object", [dict(Bucket=BUCKET, Key=k, Body=b) for k, b in hot.items()], 3)
        if round_ % 10 == 9:
            await rc.s3("delete_object", Bucket=BUCKET, Key="hot/c")
            del hot["hot/c"]
    gone = sorted(small)[::2]
    await many(rc, "delete_object", [dict(Bucket=BUCKET, Key=k) for k in gone])
    before = {nid: disk_bytes(n.data_dir) for nid, n in rc.nodes.items()}
    await reclaim(rc)
    for nid, n in rc.nodes.items():
        index = n.server.app[STORE].index
        records = sum(e.location.length for e in index.entries())
        tombs = [index.tombstone(b) for b in index.tombstones_needed_now()]
        live = records + sum(t.location.length for t in tombs if t.location is not None)
        after = disk_bytes(n.data_dir)
        collected = n.server.app[GC].stats.collected_blobs
        print(f"{nid}: disk {before[nid]} -> {after} bytes (bound {2 * live + SEGMENT}); live records {records} "
              f"+ needed tombstones {live - records}; object bytes {index.live_bytes}; "
              f"blobs collected {collected}, tombstones in memory {index.tombstone_count}")
        assert after <= 2 * live + SEGMENT, (nid, after, live)
        async with aiohttp.ClientSession() as session, session.get(f"http://{n.address}/metrics") as resp:
            text = await resp.text()
        line = next(x for x in text.splitlines() if x.startswith("objstore_compaction_reclaimed_bytes_total"))
        assert float(line.split()[-1]) > 0
    for k in gone[:50]:
        with pytest.raises(ClientError):
            await rc.s3("head_object", Bucket=BUCKET, Key=k)
    for k, body in [*list(small.items())[1:100:2], *hot.items()]:
        got = await rc.s3("get_object", Bucket=BUCKET, Key=k)
        assert await asyncio.to_thread(got["Body"].read) == body


async def test_churn_leaves_disk_within_twice_the_live_data_plus_a_segment(rc: InProcessCluster) -> None:
    await churn(rc, n_small=300, rounds=15)


@pytest.mark.slow
async def test_heavy_churn_leaves_disk_within_twice_the_live_data_plus_a_segment(rc: InProcessCluster) -> None:
    await churn(rc, n_small=3000, rounds=200)


async def test_aborted_parts_and_uncommitted_writes_leave_no_bytes(rc: InProcessCluster) -> None:
    markers = [os.urandom(32) for _ in range(3)]
    up = await rc.s3("create_multipart_upload", Bucket=BUCKET, Key="mp")
    for n, size in ((1, 1536 * 1024), (2, 20 * 1024)):  # one part in a blob file, one in a segment
        await rc.s3("upload_part", Bucket=BUCKET, Key="mp", UploadId=up["UploadId"], PartNumber=n,
                    Body=markers[n - 1] + os.urandom(size))
    await rc.s3("abort_multipart_upload", Bucket=BUCKET, Key="mp", UploadId=up["UploadId"])

    async def body():  # a PUT whose gateway stored the blobs, then died before the commit
        yield markers[2] + os.urandom(30 * 1024)

    stored = await write_blob(rc.ctx, BUCKET, "never", Policy.parse("replica:3"), 32 + 30 * 1024, body())
    assert len(stored.placement) == 3
    assert [len(files_holding(n.data_dir, markers[2])) for n in rc.nodes.values()] == [1, 1, 1]
    for i in range(12):  # seal the segments holding them
        await rc.s3("put_object", Bucket=BUCKET, Key=f"filler{i}", Body=os.urandom(8 * 1024))
    await reclaim(rc, threshold=1.01)  # compact every sealed segment with any dead byte
    for m in markers:
        await until_no_node_holds(rc, m)


async def test_a_part_of_an_upload_aborted_elsewhere_is_refused_and_leaves_no_blob(rc: InProcessCluster) -> None:
    """The gateway caches upload records for UploadPart; an upload aborted through another
    gateway (here: the metadata service directly) still refuses the next part, whose blobs go."""
    up = await rc.s3("create_multipart_upload", Bucket=BUCKET, Key="gone")
    await rc.s3("upload_part", Bucket=BUCKET, Key="gone", UploadId=up["UploadId"], PartNumber=1,
                Body=os.urandom(1536 * 1024))
    assert len(rc.ctx.uploads) == 1  # the record is cached
    await UploadClient(rc.ctx.meta).abort(BUCKET, "gone", up["UploadId"])
    marker = os.urandom(32)
    with pytest.raises(ClientError) as err:
        await rc.s3("upload_part", Bucket=BUCKET, Key="gone", UploadId=up["UploadId"], PartNumber=2,
                    Body=marker + os.urandom(1536 * 1024))
    assert err.value.response["Error"]["Code"] == "NoSuchUpload"
    await rc.ctx.drain()  # the gateway's deletes of the refused part's blobs have been answered
    await until_no_node_holds(rc, marker)


async def test_a_commit_after_its_blobs_could_be_collected_is_refused(rc: InProcessCluster) -> None:
    for n in rc.nodes.values():
        n.slow(0.4)  # each chunk to a node is late: the body takes longer than half the grace
    try:
        with pytest.raises(ClientError) as err:
            await rc.s3("put_object", Bucket=BUCKET, Key="late", Body=os.urandom(300 * 1024))
    finally:
        for n in rc.nodes.values():
            n.slow(0)
    assert err.value.response["Error"]["Code"] == "RequestTimeout"
    with pytest.raises(ClientError) as missing:
        await rc.s3("head_object", Bucket=BUCKET, Key="late")
    assert missing.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    await rc.s3("put_object", Bucket=BUCKET, Key="late", Body=b"on time")  # a prompt write commits
    got = await rc.s3("get_object", Bucket=BUCKET, Key="late")
    assert await asyncio.to_thread(got["Body"].read) == b"on time"

"""The erasure-coded data path (``ec:4+2`` buckets) against an in-process cluster of six
storage nodes in three zones: shards written to six nodes, healthy reads of data shards,
degraded reads decoding from any four, mid-stream switches, and clean 503s beyond M losses.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import AsyncIterator

import pytest
from botocore.exceptions import ClientError

from objstore.erasure.data_layout import DataLayout
from tests.harness.cluster import InProcessCluster, StorageNode
from tests.harness.disk import files_holding
from tests.harness.eventually import eventually_async

BUCKET = "coded"
TINY, INLINE, LARGE = 5000, 200 * 1024, 3 * 1024 * 1024 + 12345  # replica:3, coded sent whole, coded streamed


def body_of(size: int) -> tuple[bytes, bytes]:
    marker = os.urandom(32)
    return marker, marker + os.urandom(size - len(marker))


async def put(c: InProcessCluster, key: str, body: bytes, bucket: str = BUCKET) -> None:
    await c.s3("put_object", Bucket=bucket, Key=key, Body=body)


async def get(c: InProcessCluster, key: str, rng: str | None = None, bucket: str = BUCKET) -> bytes:
    extra = {"Range": rng} if rng else {}
    resp = await c.s3("get_object", Bucket=bucket, Key=key, **extra)
    return await asyncio.to_thread(resp["Body"].read)


async def shard_nodes(c: InProcessCluster, key: str, bucket: str = BUCKET) -> list[StorageNode]:
    """The nodes of shard 0..5, in shard order."""
    version = await c.meta.get_object(bucket, key)
    return [c.nodes[i] for i in version.placement]


@pytest.fixture
async def ec(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    async with InProcessCluster(tmp_path / "cluster", storage_nodes=6, default_policy="ec:4+2") as c:
        await c.s3("create_bucket", Bucket=BUCKET)
        yield c


@pytest.mark.parametrize("size", [TINY, INLINE, LARGE])
async def test_put_then_get_and_ranges_return_the_bytes(ec, size):
    marker, body = body_of(size)
    await put(ec, "k", body)
    version = await ec.meta.get_object(BUCKET, "k")
    layout = DataLayout.parse(version.policy)
    if size == TINY:  # below the threshold: three whole copies, same loss tolerance as 4+2
        assert version.policy == "replica:3" and len(version.placement) == 3
    else:
        assert layout.erasure_coded and (layout.policy.k, layout.policy.m) == (4, 2)
        assert len(set(version.placement)) == 6 and "" not in version.placement
        # shard 0 (the object's first bytes) is on the first node only; no node has the whole body
        assert [bool(files_holding(n.data_dir, marker)) for n in await shard_nodes(ec, "k")] == [True] + [False] * 5
    assert await get(ec, "k") == body
    for first, last in [(0, 0), (1, size // 3), (size - 7, size - 1), (size // 2, size - 1), (300_000, 1_300_000)]:
        last = min(last, size - 1)
        if first <= last:
            assert await get(ec, "k", f"bytes={first}-{last}") == body[first:last + 1]


@pytest.mark.parametrize("lost", [(0, 2), (4, 5), (1, 5)])
async def test_two_shard_nodes_down_reads_are_byte_identical(ec, lost):
    _, body = body_of(LARGE)
    await put(ec, "k", body)
    nodes = await shard_nodes(ec, "k")
    for i in lost:
        await nodes[i].down()
    assert await get(ec, "k") == body
    assert await get(ec, "k", "bytes=1000-2000000") == body[1000:2000001]
    assert await get(ec, "k", "bytes=-5") == body[-5:]


async def test_three_shard_nodes_down_is_a_clean_503(ec):
    _, body = body_of(LARGE)
    await put(ec, "k", body)
    nodes = await shard_nodes(ec, "k")
    for i in (0, 3, 5):
        await nodes[i].down()
    with pytest.raises(ClientError) as err:
        await get(ec, "k")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    await nodes[3].up()
    assert await get(ec, "k") == body  # four shards again: readable


@pytest.mark.parametrize("size", [INLINE, LARGE])
async def test_a_corrupt_data_shard_is_rebuilt_from_the_others(ec, size):
    marker, body = body_of(size)
    await put(ec, "k", body)
    first = (await shard_nodes(ec, "k"))[0]
    first.corrupt(marker)
    assert await get(ec, "k") == body
    assert await get(ec, "k", "bytes=0-99") == body[:100]


async def test_a_shard_node_dying_in_the_middle_of_a_get_switches_to_decoding(ec, caplog):
    caplog.set_level(logging.INFO, logger="gateway.datapath.erasure_read")
    size = 16 * 1024 * 1024
    _, body = body_of(size)
    await put(ec, "big", body)
    victim = (await shard_nodes(ec, "big"))[1]
    victim.slow(0.02)  # its stream is still going when it dies
    resp = await ec.s3("get_object", Bucket=BUCKET, Key="big")
    head = await asyncio.to_thread(resp["Body"].read, 1024 * 1024)
    await victim.down()
    rest = await asyncio.to_thread(resp["Body"].read)
    assert head + rest == body
    failed_at = [r.args[4] for r in caplog.records if "failed at byte" in r.msg and r.args[3] == victim.node_id]
    assert len(failed_at) == 1 and len(head) <= failed_at[0] < size  # resumed mid-stream, not restarted


@pytest.mark.parametrize("size", [INLINE, LARGE])
async def test_put_with_one_node_down_succeeds_and_survives_one_more_loss(ec, size):
    await ec.nodes["s1"].down()
    _, body = body_of(size)
    await put(ec, "k", body)
    version = await ec.meta.get_object(BUCKET, "k")
    assert len([p for p in version.placement if p]) >= 5
    assert await get(ec, "k") == body
    other = next(n for n in await shard_nodes_present(ec, "k") if n.node_id != "s1")
    await other.down()
    assert await get(ec, "k") == body


async def shard_nodes_present(c: InProcessCluster, key: str) -> list[StorageNode]:
    version = await c.meta.get_object(BUCKET, key)
    return [c.nodes[i] for i in version.placement if i]


async def test_put_with_two_nodes_down_fails_cleanly(ec):
    await ec.nodes["s1"].down()
    await ec.nodes["s4"].down()
    _, body = body_of(LARGE)
    with pytest.raises(ClientError) as err:
        await put(ec, "k", body)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    with pytest.raises(ClientError) as err:
        await ec.s3("head_object", Bucket=BUCKET, Key="k")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


async def test_multipart_parts_are_coded_and_read_back_with_two_nodes_down(ec):
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1234)]
    up = await ec.s3("create_multipart_upload", Bucket=BUCKET, Key="mp")
    etags = []
    for n, data in enumerate(parts, 1):
        r = await ec.s3("upload_part", Bucket=BUCKET, Key="mp", UploadId=up["UploadId"], PartNumber=n, Body=data)
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    await ec.s3("complete_multipart_upload", Bucket=BUCKET, Key="mp", UploadId=up["UploadId"],
                MultipartUpload={"Parts": etags})
    body = b"".join(parts)
    assert await get(ec, "mp") == body
    await ec.nodes["s2"].down()
    await ec.nodes["s5"].down()
    assert await get(ec, "mp") == body
    assert await get(ec, "mp", f"bytes={len(parts[0]) - 10}-{len(body) - 1}") == body[len(parts[0]) - 10:]


async def create_bucket_with_policy(c: InProcessCluster, name: str, policy: str,
                                    write_quorum: int | str | None = None) -> None:
    """CreateBucket with an ``x-objstore-policy`` header (and ``x-objstore-write-quorum``)."""
    def add_policy(request, **_):
        request.headers["x-objstore-policy"] = policy
        if write_quorum is not None:
            request.headers["x-objstore-write-quorum"] = str(write_quorum)

    c.s3_client.meta.events.register("before-sign.s3.CreateBucket", add_policy)
    try:
        await c.s3("create_bucket", Bucket=name)
    finally:
        c.s3_client.meta.events.unregister("before-sign.s3.CreateBucket", add_policy)


async def test_copy_between_coded_and_replicated_buckets_both_ways(ec):
    await create_bucket_with_policy(ec, "plain", "replica:3")
    _, body = body_of(LARGE)
    await put(ec, "src", body)
    await ec.s3("copy_object", Bucket="plain", Key="copy", CopySource={"Bucket": BUCKET, "Key": "src"})
    assert (await ec.meta.get_object("plain", "copy")).policy == "replica:3"
    assert await get(ec, "copy", bucket="plain") == body
    await ec.s3("copy_object", Bucket=BUCKET, Key="back", CopySource={"Bucket": "plain", "Key": "copy"})
    assert DataLayout.parse((await ec.meta.get_object(BUCKET, "back")).policy).erasure_coded
    await ec.nodes["s3"].down()
    await ec.nodes["s6"].down()
    assert await get(ec, "back") == body


@pytest.mark.parametrize("policy, words", [
    ("ec:5+2", "the cluster has 6"), ("ec:1+2", "K >= 2"), ("ec:4+0", "M >= 1"),
])
async def test_create_bucket_refuses_ec_policies_the_cluster_cannot_hold(ec, policy, words):
    with pytest.raises(ClientError) as err:
        await create_bucket_with_policy(ec, "nope", policy)
    assert err.value.response["Error"]["Code"] == "InvalidArgument"
    assert words in err.value.response["Error"]["Message"]


async def test_write_quorum_k_plus_m_fails_a_put_with_one_node_down_where_k_plus_1_succeeds(ec):
    await create_bucket_with_policy(ec, "strict", "ec:4+2", write_quorum=6)
    assert (await ec.meta.get_bucket("strict")).write_quorum == 6
    await ec.nodes["s1"].down()
    _, body = body_of(LARGE)
    with pytest.raises(ClientError) as err:
        await put(ec, "k", body, bucket="strict")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    with pytest.raises(ClientError) as err:
        await ec.s3("head_object", Bucket="strict", Key="k")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    await put(ec, "k", body)  # the default bucket: W = K+1 = 5 of the 5 nodes up
    assert await get(ec, "k") == body


@pytest.mark.parametrize("policy, w, words", [
    ("ec:4+2", 4, "no redundancy"), ("ec:4+2", 7, "K+M = 6"), ("replica:3", 4, "1 to 3"), ("ec:4+2", "x", "number"),
])
async def test_create_bucket_refuses_a_write_quorum_the_policy_does_not_allow(ec, policy, w, words):
    with pytest.raises(ClientError) as err:
        await create_bucket_with_policy(ec, "nope", policy, write_quorum=w)
    assert err.value.response["Error"]["Code"] == "InvalidArgument"
    assert words in err.value.response["Error"]["Message"]


def record_shard_reads(c: InProcessCluster) -> list[int]:
    """The shard index of every blob GET the gateway makes from now on."""
    storage = c.ctx.storage
    asked: list[int] = []
    real = storage.get_blob

    def get_blob(address, version_id, shard, *args, **kw):
        asked.append(shard)
        return real(address, version_id, shard, *args, **kw)

    storage.get_blob = get_blob
    return asked


async def test_a_healthy_read_fetches_data_shards_only_and_a_degraded_one_parity_too(ec):
    _, body = body_of(LARGE)
    await put(ec, "k", body)
    asked = record_shard_reads(ec)
    assert await get(ec, "k") == body
    assert sorted(asked) == [0, 1, 2, 3]  # one stream per data shard, whatever the stripe count
    asked.clear()
    assert await get(ec, "k", "bytes=10-20") == body[10:21]
    assert asked == [0]  # the bytes of one data shard only
    await (await shard_nodes(ec, "k"))[2].down()
    asked.clear()
    assert await get(ec, "k") == body
    assert set(asked) - {2} == {0, 1, 3, 4}  # data shards, and the first parity shard instead of 2


async def test_deleting_a_coded_object_leaves_every_shard_to_garbage_collection(tmp_path):
    async with InProcessCluster(tmp_path / "cluster", storage_nodes=6, default_policy="ec:4+2", gc_grace=1.0) as ec:
        await ec.s3("create_bucket", Bucket=BUCKET)
        _, body = body_of(LARGE)
        await put(ec, "k", body)
        version = await ec.meta.get_object(BUCKET, "k")
        storage = ec.ctx.storage

        async def shards_left() -> list[int]:
            return [i for i, node_id in enumerate(version.placement)
                    if await storage.head_blob(ec.nodes[node_id].address, version.version_id, i) is not None]

        async def none_left() -> bool:
            await ec.collect_garbage()
            return await shards_left() == []

        assert await shards_left() == list(range(6))
        await ec.s3("delete_object", Bucket=BUCKET, Key="k")
        assert await shards_left() == list(range(6))  # deferred: a GET streaming from them finishes
        await eventually_async(none_left, message="every shard blob collected after the grace")


async def test_upload_part_copy_codes_a_range_of_a_coded_source(ec):
    _, body = body_of(6 * 1024 * 1024)
    await put(ec, "src", body)
    up = await ec.s3("create_multipart_upload", Bucket=BUCKET, Key="dst")
    first, last = 1000, 5 * 1024 * 1024 + 999  # a part of 5 MiB, off the stripe edges
    r1 = await ec.s3("upload_part_copy", Bucket=BUCKET, Key="dst", UploadId=up["UploadId"], PartNumber=1,
                     CopySource={"Bucket": BUCKET, "Key": "src"}, CopySourceRange=f"bytes={first}-{last}")
    r2 = await ec.s3("upload_part", Bucket=BUCKET, Key="dst", UploadId=up["UploadId"], PartNumber=2, Body=b"tail")
    await ec.s3("complete_multipart_upload", Bucket=BUCKET, Key="dst", UploadId=up["UploadId"],
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
                                           {"PartNumber": 2, "ETag": r2["ETag"]}]})
    want = body[first:last + 1] + b"tail"
    assert await get(ec, "dst") == want
    parts = (await ec.meta.get_object(BUCKET, "dst")).parts
    assert [len(p.placement) for p in parts] == [6, 6]  # both parts coded, the 4-byte one too
    await ec.nodes["s1"].down()
    await ec.nodes["s2"].down()
    assert await get(ec, "dst") == want


async def test_missing_shard_blobs_are_rebuilt_from_the_others(ec):
    _, body = body_of(LARGE)
    await put(ec, "k", body)
    version = await ec.meta.get_object(BUCKET, "k")
    for i in (1, 4):  # a data shard and a parity shard gone from nodes that are up
        await ec.ctx.storage.delete_blob(ec.nodes[version.placement[i]].address, version.version_id, i)
    assert await get(ec, "k") == body
    assert await get(ec, "k", "bytes=700000-800000") == body[700000:800001]
    assert not any(ec.ctx.topology.is_suspect(n) for n in version.placement)  # missing is not down


async def test_a_healthy_read_sends_the_spans_as_received_and_only_a_degraded_one_assembles_stripes(
        ec, monkeypatch):
    from gateway.datapath import erasure_read
    assembled = []
    real = erasure_read.assemble_stripe

    def spy(*args):  # type: ignore[no-untyped-def]
        assembled.append(args[1].stripe)
        return real(*args)

    monkeypatch.setattr(erasure_read, "assemble_stripe", spy)
    _, body = body_of(LARGE)
    await put(ec, "k", body)
    assert await get(ec, "k") == body
    assert await get(ec, "k", "bytes=300000-2500000") == body[300000:2500001]
    assert assembled == []  # no stripe joined into a buffer of its own
    await (await shard_nodes(ec, "k"))[1].down()
    assert await get(ec, "k") == body
    assert assembled  # decoded stripes are assembled from the decoded columns


HUGE = 9 * 1024 * 1024 + 4321  # coded in 4 MiB stripes: two whole ones and a partial one


@pytest.mark.parametrize("lost", [(), (0, 3), (4, 5)])
async def test_a_large_object_is_coded_in_4_mib_stripes_and_reads_back_byte_identical(ec, lost):
    marker, body = body_of(HUGE)
    await put(ec, "big", body)
    version = await ec.meta.get_object(BUCKET, "big")
    assert version.policy == "ec:4+2;stripe=4194304"
    nodes = await shard_nodes(ec, "big")
    assert [bool(files_holding(n.data_dir, marker)) for n in nodes] == [True] + [False] * 5
    for i in lost:
        await nodes[i].down()
    assert await get(ec, "big") == body
    stripe = 4 * 1024 * 1024
    for first, last in [(0, 0), (stripe - 3, stripe + 2), (1_048_000, 1_049_000), (2 * stripe - 1, HUGE - 1),
                        (HUGE - 5, HUGE - 1)]:
        assert await get(ec, "big", f"bytes={first}-{last}") == body[first:last + 1]

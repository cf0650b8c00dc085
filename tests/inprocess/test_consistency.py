"""Tunable consistency against an in-process cluster (one metadata node, three storage
nodes): commit manifests written with every write, quorum and one reads served from them,
the Raft commit index (not the version id) deciding which version is current, and reads
that keep working while the metadata service is down."""
from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from botocore.exceptions import ClientError

from gateway.datapath.write import commit_version, write_blob
from objstore.manifest import manifest_replicas, manifest_write_quorum
from objstore.types import ObjectVersion, Policy
from tests.harness.cluster import InProcessCluster
from tests.harness.eventually import eventually_async
from tests.harness.s3_headers import extra_headers, response_headers
from tests.linearizability.history import Op
from tests.linearizability.quorum import check_one, check_quorum

BUCKET = "tunable"


async def get(c: InProcessCluster, key: str, level: str | None = None, **params) -> tuple[bytes, dict[str, str]]:
    headers = {"x-objstore-consistency": level} if level else {}
    with extra_headers(c.s3_client, "GetObject", headers):
        resp = await c.s3("get_object", Bucket=BUCKET, Key=key, **params)
    return await asyncio.to_thread(resp["Body"].read), response_headers(resp)


async def put(c: InProcessCluster, key: str, body: bytes, **headers: str) -> dict[str, str]:
    with extra_headers(c.s3_client, "PutObject", headers):
        return response_headers(await c.s3("put_object", Bucket=BUCKET, Key=key, Body=body))


async def manifests_on(c: InProcessCluster, key: str) -> dict[str, int]:
    """node id -> the newest commit index of ``key``'s manifests there (running nodes)."""
    out = {}
    for node_id, node in c.nodes.items():
        if node.running:
            found = await c.ctx.storage.get_manifests(node.address, BUCKET, key)
            if found:
                out[node_id] = found[0].commit_index
    return out


async def test_writes_report_their_commit_and_reads_their_level(inproc):
    await inproc.s3("create_bucket", Bucket=BUCKET)
    h = await put(inproc, "k", b"v1")
    assert h["x-objstore-replicas-written"] == "3"
    index = int(h["x-objstore-commit-index"])
    # The answer waits for the manifest write quorum (2 of 3); the third may land just after.
    assert list((await manifests_on(inproc, "k")).values()).count(index) >= 2
    everywhere = {"s1": index, "s2": index, "s3": index}

    async def on_all_three() -> bool:
        return await manifests_on(inproc, "k") == everywhere

    await eventually_async(on_all_three, 10, message="the manifest on all three replicas")
    for level, replicas in (("quorum", "2"), ("one", "1")):
        body, rh = await get(inproc, "k", level)
        assert body == b"v1"
        assert rh["x-objstore-consistency"] == level
        assert rh["x-objstore-replicas-read"] == replicas
        assert rh["x-objstore-commit-index"] == str(index)
    body, rh = await get(inproc, "k")
    assert body == b"v1" and rh["x-objstore-consistency"] == "strong" and "x-objstore-replicas-read" not in rh
    body, _ = await get(inproc, "k", "quorum", Range="bytes=1-1")
    assert body == b"1"
    with pytest.raises(ClientError) as err:
        await get(inproc, "k", "eventual")
    assert err.value.response["Error"]["Code"] == "InvalidArgument"


async def test_the_commit_index_decides_not_the_version_id(inproc):
    """A write whose version id is older (it started first) but that commits last is the
    current version, for strong and quorum reads alike."""
    await inproc.s3("create_bucket", Bucket=BUCKET)
    ctx = inproc.ctx
    early_id = ctx.hlc.next()  # taken before the other write started
    await put(inproc, "k", b"second-started")
    policy = Policy.parse("replica:3")

    async def chunks():
        yield b"first-started"

    stored = await write_blob(ctx, BUCKET, "k", policy, 13, chunks(), early_id)
    record = ObjectVersion(BUCKET, "k", early_id, 13, "etag-not-checked", time.time(), policy=stored.policy,
                           placement=stored.placement, owner="test-access-key")
    record = dataclasses.replace(record, owner=(await ctx.bucket(BUCKET)).owner)
    await commit_version(ctx, record, policy, 2)
    assert (await get(inproc, "k", "quorum"))[0] == b"first-started"
    assert (await get(inproc, "k"))[0] == b"first-started"


async def test_deletes_write_tombstones_and_versions_stay_readable_by_id(inproc):
    await inproc.s3("create_bucket", Bucket=BUCKET)
    await inproc.s3("put_bucket_versioning", Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    v1 = (await inproc.s3("put_object", Bucket=BUCKET, Key="k", Body=b"one"))["VersionId"]
    await inproc.s3("put_object", Bucket=BUCKET, Key="k", Body=b"two")
    assert (await get(inproc, "k", "quorum", VersionId=v1))[0] == b"one"
    await inproc.s3("delete_object", Bucket=BUCKET, Key="k")
    with pytest.raises(ClientError) as err:
        await get(inproc, "k", "quorum")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"
    assert err.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    await inproc.s3("delete_object", Bucket=BUCKET, Key="k", VersionId=v1)
    with pytest.raises(ClientError) as err:
        await get(inproc, "k", "quorum", VersionId=v1)
    assert err.value.response["Error"]["Code"] == "NoSuchVersion"


async def test_bucket_default_level_and_per_request_write_quorum(inproc):
    with extra_headers(inproc.s3_client, "CreateBucket", {"x-objstore-consistency": "quorum"}):
        await inproc.s3("create_bucket", Bucket=BUCKET)
    await put(inproc, "k", b"x")
    assert (await get(inproc, "k"))[1]["x-objstore-consistency"] == "quorum"
    await inproc.meta.set_bucket_consistency(BUCKET, "one")
    inproc.ctx.forget_bucket(BUCKET)
    assert (await get(inproc, "k"))[1]["x-objstore-consistency"] == "one"
    with pytest.raises(ClientError) as err:
        await put(inproc, "k", b"x", **{"x-objstore-write-quorum": "4"})
    assert err.value.response["Error"]["Code"] == "InvalidArgument"
    await inproc.nodes["s3"].down()
    await inproc.nodes["s2"].down()
    h = await put(inproc, "k", b"w1", **{"x-objstore-write-quorum": "1"})
    assert h["x-objstore-replicas-written"] == "1"


async def test_manifests_survive_a_storage_node_restart(inproc):
    await inproc.s3("create_bucket", Bucket=BUCKET)
    index = int((await put(inproc, "k", b"v"))["x-objstore-commit-index"])
    await inproc.nodes["s1"].down()
    await inproc.nodes["s1"].up()
    assert (await manifests_on(inproc, "k"))["s1"] == index


async def test_quorum_reads_work_without_the_metadata_service(tmp_path):
    async with InProcessCluster(tmp_path / "c", gateway={"metadata_timeout_seconds": 1.0}) as c:
        await c.s3("create_bucket", Bucket=BUCKET)
        await put(c, "k", b"hello")
        assert (await get(c, "k", "quorum"))[0] == b"hello"  # caches the bucket record
        await c.metadata.stop()
        c.metadata = None
        for level in ("quorum", "one"):
            body, h = await get(c, "k", level, Range="bytes=0-3")
            assert body == b"hell" and h["x-objstore-consistency"] == level
        began = time.monotonic()
        for call in (lambda: get(c, "k"), lambda: put(c, "k2", b"x")):
            with pytest.raises(ClientError) as err:
                await call()
            assert err.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert time.monotonic() - began < 10  # failed on the deadline, not a client timeout
        await asyncio.sleep(2.5)  # past the bucket record's and the key's cache lifetime
        assert (await get(c, "k", "quorum"))[0] == b"hello"
        assert c.ctx.stale_seconds() > 0


async def _all_three(c: InProcessCluster) -> dict[str, int]:
    on = await manifests_on(c, "k")
    return on if len(on) >= 3 else {}


async def test_ec_manifests_go_to_m_plus_one_ring_nodes(tmp_path):
    async with InProcessCluster(tmp_path / "c", storage_nodes=6, default_policy="ec:4+2") as c:
        await c.s3("create_bucket", Bucket=BUCKET)
        h = await put(c, "k", b"z" * 100_000)
        assert h["x-objstore-replicas-written"] == "6"
        policy = Policy.parse("ec:4+2")
        # The answer waits for the manifest write quorum; the last replica may land just after.
        assert len(await manifests_on(c, "k")) >= manifest_write_quorum(policy, 0)
        on = await eventually_async(lambda: _all_three(c), 10, message="the manifest on its M+1 ring nodes")
        assert len(on) == manifest_replicas(policy) == 3
        assert (await get(c, "k", "quorum"))[1]["x-objstore-replicas-read"] == "2"


async def test_with_r_plus_w_at_most_n_a_quorum_read_misses_an_acknowledged_write_and_the_checker_says_so(inproc):
    """The counterexample: W=1 on a replica:3 bucket whose quorum reads ask R=2. The write
    lands on s1 alone (s2, s3 down); with s1 down and s2, s3 back, a quorum read sees only
    the older manifest. The quorum checker must reject that history."""
    await inproc.s3("create_bucket", Bucket=BUCKET)
    t0 = time.monotonic()
    first = int((await put(inproc, "k", b"old"))["x-objstore-commit-index"])
    t1 = time.monotonic()
    await inproc.nodes["s2"].down()
    await inproc.nodes["s3"].down()
    h = await put(inproc, "k", b"new", **{"x-objstore-write-quorum": "1"})
    t2 = time.monotonic()
    assert h["x-objstore-quorum-overlap"] == "false"  # the write's answer warns: R + W <= N
    await inproc.nodes["s2"].up()
    await inproc.nodes["s3"].up()
    await inproc.nodes["s1"].down()
    t3 = time.monotonic()
    body, _ = await get(inproc, "k", "quorum")
    t4 = time.monotonic()
    assert body == b"old"  # the acknowledged write is missed
    history = [Op(0, "put", "k", "old", first, t0, t1, True),
               Op(0, "put", "k", "new", int(h["x-objstore-commit-index"]), t1, t2, True),
               Op(1, "get", "k", "quorum", body.decode(), t3, t4, True)]
    result = check_quorum(history)
    assert not result.ok and "older than" in result.violations[0].reason
    assert check_one(history).ok  # one promises no more than written values


async def test_listings_at_one_say_how_stale_they_may_be(inproc):
    await inproc.s3("create_bucket", Bucket=BUCKET)
    await put(inproc, "k", b"x")
    with extra_headers(inproc.s3_client, "ListObjectsV2", {"x-objstore-consistency": "one"}):
        resp = await inproc.s3("list_objects_v2", Bucket=BUCKET)
    h = response_headers(resp)
    assert [o["Key"] for o in resp["Contents"]] == ["k"]
    assert h["x-objstore-consistency"] == "one" and int(h["x-objstore-applied-index"]) > 0
    assert h["x-objstore-stale-entries"] == "0"
    with extra_headers(inproc.s3_client, "ListObjectVersions", {"x-objstore-consistency": "one"}):
        resp = await inproc.s3("list_object_versions", Bucket=BUCKET)
    assert response_headers(resp)["x-objstore-consistency"] == "one" and len(resp["Versions"]) == 1
    assert response_headers(await inproc.s3("list_objects", Bucket=BUCKET))["x-objstore-consistency"] == "strong"
    with extra_headers(inproc.s3_client, "ListObjectsV2", {"x-objstore-consistency": "quorum"}):
        with pytest.raises(ClientError) as err:
            await inproc.s3("list_objects_v2", Bucket=BUCKET)
    assert err.value.response["Error"]["Code"] == "InvalidArgument"


async def test_writes_at_w2_while_a_node_is_away_are_read_at_r2_from_the_other_side(inproc):
    """s3 is away while writes go on at W=2 (s1, s2 hold their manifests); then s3 is back
    and s1 away: R=2 from s2 and s3 must still see the newest write, and repair s3."""
    await inproc.s3("create_bucket", Bucket=BUCKET)
    history = []
    await inproc.nodes["s3"].down()
    for n in range(5):
        call = time.monotonic()
        h = await put(inproc, "k", f"v{n}".encode(), **{"x-objstore-write-quorum": "2"})
        history.append(Op(0, "put", "k", f"v{n}", int(h["x-objstore-commit-index"]), call, time.monotonic(), True))
    await inproc.nodes["s3"].up()
    await inproc.nodes["s1"].down()
    call = time.monotonic()
    body, h = await get(inproc, "k", "quorum")
    history.append(Op(1, "get", "k", "quorum", body.decode(), call, time.monotonic(), True))
    assert body == b"v4" and h["x-objstore-replicas-read"] == "2"
    assert check_quorum(history).ok
    newest = history[4].output
    await inproc.ctx.drain()  # the read repaired s3's stale manifest in the background
    assert (await manifests_on(inproc, "k"))["s3"] == newest


async def test_the_gateway_counts_reads_by_the_level_that_served_them(inproc):
    from gateway.context import CTX_KEY

    counter = inproc.gateway.app[CTX_KEY].metrics.consistency
    before = {level: counter.labels(level)._value.get() for level in ("strong", "quorum", "one")}
    await inproc.s3("create_bucket", Bucket=BUCKET)
    await put(inproc, "counted", b"x")
    for level in ("strong", "quorum", "quorum", "one"):
        assert (await get(inproc, "counted", level))[1]["x-objstore-consistency"] == level
    after = {level: counter.labels(level)._value.get() for level in ("strong", "quorum", "one")}
    assert {k: after[k] - before[k] for k in after} == {"strong": 1, "quorum": 2, "one": 1}


async def test_copy_and_complete_fail_at_once_while_a_metadata_outage_is_known(inproc):
    """Once a metadata call found no majority (``gateway.outage``), CopyObject and
    CompleteMultipartUpload answer 503 ServiceUnavailable without asking the metadata
    service again. It is up here, so only the gateway's knowledge of the outage can have
    refused them; nothing changed, and both succeed once the outage is over."""
    await inproc.s3("create_bucket", Bucket=BUCKET)
    await put(inproc, "src", b"source")
    upload = (await inproc.s3("create_multipart_upload", Bucket=BUCKET, Key="mp"))["UploadId"]
    etag = (await inproc.s3("upload_part", Bucket=BUCKET, Key="mp", UploadId=upload, PartNumber=1,
                            Body=b"part"))["ETag"]
    outage = inproc.ctx.outage
    outage.hold = 3600.0
    outage.note()
    copy = {"Bucket": BUCKET, "Key": "dst", "CopySource": {"Bucket": BUCKET, "Key": "src"}}
    complete = {"Bucket": BUCKET, "Key": "mp", "UploadId": upload,
                "MultipartUpload": {"Parts": [{"ETag": etag, "PartNumber": 1}]}}
    for operation, params in (("copy_object", copy), ("complete_multipart_upload", complete)):
        with pytest.raises(ClientError) as err:
            await inproc.s3(operation, **params)
        assert err.value.response["Error"]["Code"] == "ServiceUnavailable", operation
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    outage.clear()
    for key in ("dst", "mp"):
        with pytest.raises(ClientError) as err:
            await inproc.s3("head_object", Bucket=BUCKET, Key=key)
        assert err.value.response["Error"]["Code"] == "404"
    assert [p["PartNumber"] for p in (await inproc.s3("list_parts", Bucket=BUCKET, Key="mp",
                                                       UploadId=upload))["Parts"]] == [1]
    await inproc.s3("copy_object", **copy)
    await inproc.s3("complete_multipart_upload", **complete)
    assert (await get(inproc, "dst", "quorum"))[0] == b"source"
    assert (await get(inproc, "mp", "quorum"))[0] == b"part"


async def test_tag_and_acl_changes_reach_quorum_reads(inproc):
    """PutObjectTagging, DeleteObjectTagging and PutObjectAcl commit at their own index and
    publish a manifest before answering: a quorum read begun after them sees the change
    (the tag count of GET/HEAD), on the current version and on one named by id."""
    await inproc.s3("create_bucket", Bucket=BUCKET)
    await inproc.s3("put_bucket_versioning", Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    v1 = (await inproc.s3("put_object", Bucket=BUCKET, Key="k", Body=b"one"))["VersionId"]
    await inproc.s3("put_object", Bucket=BUCKET, Key="k", Body=b"two")

    def tag_count(headers: dict[str, str]) -> int:
        return int(headers.get("x-amz-tagging-count", "0"))

    tags = {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}
    await inproc.s3("put_object_tagging", Bucket=BUCKET, Key="k", Tagging=tags)
    body, h = await get(inproc, "k", "quorum")
    assert body == b"two" and tag_count(h) == 2
    await inproc.s3("put_object_tagging", Bucket=BUCKET, Key="k", VersionId=v1,
                    Tagging={"TagSet": [{"Key": "old", "Value": "x"}]})
    body, h = await get(inproc, "k", "quorum", VersionId=v1)
    assert body == b"one" and tag_count(h) == 1
    body, h = await get(inproc, "k", "quorum")
    assert body == b"two" and tag_count(h) == 2  # the current version kept its tags
    await inproc.s3("delete_object_tagging", Bucket=BUCKET, Key="k")
    assert tag_count((await get(inproc, "k", "quorum"))[1]) == 0
    await inproc.s3("put_object_acl", Bucket=BUCKET, Key="k", ACL="public-read")
    index = max((await manifests_on(inproc, "k")).values())
    for node in inproc.nodes.values():
        newest = (await inproc.ctx.storage.get_manifests(node.address, BUCKET, "k"))[0]
        if newest.commit_index == index:
            assert newest.version is not None and newest.version.public_read
    with extra_headers(inproc.s3_client, "HeadObject", {"x-objstore-consistency": "quorum"}):
        head = await inproc.s3("head_object", Bucket=BUCKET, Key="k")
    assert response_headers(head)["x-objstore-commit-index"] == str(index)


async def test_owners_that_missed_a_committed_manifest_are_sent_it_again_when_back(tmp_path):
    """Two of a key's three manifest owners are away (five storage nodes: the blob goes to
    up nodes) when a PUT commits: its record is in Raft but only one owner stores its
    manifest, so the PUT answers 503 (ambiguous: quorum readers cannot be promised it).
    When the two come back, the gateway sends them the manifest again, so a quorum read
    that asks only those two serves the committed version rather than the older one
    (without the retry both keep the older manifest and agree on it)."""
    async with InProcessCluster(tmp_path / "c", storage_nodes=5) as c:
        c.ctx.manifest_retries.delays = (0.2,) * 100
        await c.s3("create_bucket", Bucket=BUCKET)
        old = int((await put(c, "k", b"old"))["x-objstore-commit-index"])
        first, *away = c.ctx.rings.owner_sets(BUCKET, "k", 3)[0]
        for node_id in away:
            await c.nodes[node_id].down()
        with pytest.raises(ClientError) as err:
            await put(c, "k", b"new")
        assert err.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert (await get(c, "k"))[0] == b"new"  # the record committed: a strong read sees it
        on = await manifests_on(c, "k")
        committed = on[first]
        assert committed > old and set(on) & set(away) == set()
        for node_id in away:
            await c.nodes[node_id].up()
        await eventually_async(lambda: _holds(c, away, committed), 15,
                               message="the manifest sent again to the owners that missed it")
        await c.nodes[first].down()
        body, h = await get(c, "k", "quorum")
        assert body == b"new" and h["x-objstore-commit-index"] == str(committed)


async def _holds(c: InProcessCluster, nodes: list[str], index: int) -> bool:
    on = await manifests_on(c, "k")
    return all(on.get(n) == index for n in nodes)

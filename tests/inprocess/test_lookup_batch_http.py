"""``POST /v1/objects`` on an in-process metadata node (metadata.lookup_batch_http): one answer
per lookup in order from one strong read, one lookup's error does not fail the others, a
node that does not lead refuses the whole call; concurrent S3 GETs through the gateway make
fewer lookup calls than GETs and read the right bytes; and reads coalesced by one client
stay linearizable, answers held back included."""
from __future__ import annotations

import asyncio
import functools
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from metadata.api.client import MetadataClient
from metadata.app import METRICS as METADATA_METRICS, REPLICATOR
from objstore.errors import NoSuchBucket, NotLeader, NoSuchKey
from tests.harness.cluster import SECRET
from tests.linearizability.checker import check
from tests.linearizability.history import Recorder
from tests.linearizability.workload import ClientRegister, ClientState, Tally, classify, run_client, version


def _calls(inproc, *ops: str) -> float:
    reg = inproc.metadata.app[METADATA_METRICS].registry
    return sum(reg.get_sample_value("objstore_requests_total", {"role": "metadata", "op": op, "status": status}) or 0
               for op in ops for status in ("200", "404", "405"))


async def test_each_lookup_gets_its_own_answer_from_one_read(inproc):
    meta = inproc.meta
    await meta.create_bucket("b", "lin", "", 1.0)
    await meta.set_bucket_versioning("b", "Enabled")
    await meta.put_object(version("b", "k", "v1"))
    await meta.delete_version("b", "gone", marker_id="m1")  # a current delete marker
    rep = inproc.metadata.app[REPLICATOR]
    reads = 0
    real_read = rep.read

    async def counting_read(fn):
        nonlocal reads
        reads += 1
        return await real_read(fn)

    rep.read = counting_read
    body = {"lookups": [{"bucket": "b", "key": "k"}, {"bucket": "b", "key": "none"},
                        {"bucket": "b", "key": "gone"}, {"bucket": "nob", "key": "k"},
                        {"bucket": "b", "key": "k", "version_id": "v1"}, {"bucket": "b", "key": "gone",
                                                                           "version_id": "m1"}]}
    results = (await meta._call("POST", "/v1/objects", body=body))["results"]
    assert reads == 1
    assert results[0]["value"]["version"]["etag"] == "v1" and results[0]["value"]["versioning"] == "Enabled"
    assert results[1]["error"]["code"] == "NoSuchKey"
    assert results[2]["error"]["code"] == "NoSuchKey" and results[2]["error"]["extra"]["delete_marker"]
    assert results[3]["error"]["code"] == "NoSuchBucket"
    assert results[4]["value"]["version"]["version_id"] == "v1"
    assert results[5]["error"]["code"] == "MethodNotAllowed"
    # Each as GET /v1/object answers it alone.
    alone = await meta._call("GET", "/v1/object", {"bucket": "b", "key": "k"})
    assert alone == results[0]["value"]


async def test_a_node_that_does_not_lead_refuses_the_whole_call(inproc):
    meta = inproc.meta
    await meta.create_bucket("b", "lin", "", 1.0)
    rep = inproc.metadata.app[REPLICATOR]
    real_read = rep.read

    async def not_leading(fn):
        raise NotLeader("not the leader")

    rep.read = not_leading
    try:
        with pytest.raises(NotLeader):
            await meta._attempt(meta.addresses[0], "POST", "/v1/objects",
                                b'{"lookups":[{"bucket":"b","key":"k"},{"bucket":"b","key":"j"}]}', 5.0)
    finally:
        rep.read = real_read


async def test_concurrent_gets_through_the_gateway_make_fewer_lookup_calls_than_gets(inproc):
    await inproc.s3("create_bucket", Bucket="many")
    gets = 32
    bodies = {f"k{i}": bytes([i]) * (100 + i) for i in range(gets // 2)}
    for key, body in bodies.items():
        await inproc.s3("put_object", Bucket="many", Key=key, Body=body)
    keys = [f"k{i % (gets // 2)}" for i in range(gets)] + ["missing"] * 4
    before = _calls(inproc, "get_object", "get_objects")

    def get(key: str) -> bytes | str:
        try:
            return inproc.s3_client.get_object(Bucket="many", Key=key)["Body"].read()
        except inproc.s3_client.exceptions.NoSuchKey:
            return "NoSuchKey"

    with ThreadPoolExecutor(len(keys)) as pool:
        loop = asyncio.get_running_loop()
        got = await asyncio.gather(*(loop.run_in_executor(pool, functools.partial(get, k)) for k in keys))
    calls = _calls(inproc, "get_object", "get_objects") - before
    assert got == [bodies[k] for k in keys[:gets]] + ["NoSuchKey"] * 4
    assert 0 < calls < len(keys)
    assert _calls(inproc, "get_objects") > 0


async def test_reads_coalesced_by_one_client_are_linearizable_with_answers_held_back(inproc):
    """Eight register clients share one MetadataClient (their reads coalesce into batch
    calls); every batch answer is held back a random while after the node answered, so a
    write is often acknowledged while an older read's answer is still on its way. A read
    that joined a call already in flight would return that older state after the write's
    acknowledgement: the checker finds no such read."""
    await inproc.meta.create_bucket("lin", "lin", "", 1.0)
    shared = MetadataClient([inproc.meta_address], SECRET, client_id="shared", deadline=10)
    real_attempt = shared._attempt
    rng = random.Random(7)

    async def held_back(addr, method, path_qs, data, timeout):
        answer = await real_attempt(addr, method, path_qs, data, timeout)
        await asyncio.sleep(rng.uniform(0, 0.03))
        return answer

    shared._attempt = held_back
    keys = ["a", "b"]
    recorder = Recorder(classify=classify)
    stop = asyncio.Event()
    clients = 8
    tasks = [asyncio.create_task(run_client(recorder, ClientRegister(shared, "lin"),
                                            ClientState(i, random.Random(i)), keys, stop)) for i in range(clients)]
    try:
        await asyncio.sleep(4.0)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await shared.close()
    ops = recorder.history()
    tally = Tally.of(ops)
    assert tally.reads_of_values >= 20 and tally.writes_ok >= 20, tally.describe()
    assert shared._lookups is not None and shared._lookups.calls < sum(o.kind == "get" for o in ops)
    result = check(ops)
    assert result.ok, result.describe()


async def test_the_client_raises_each_lookups_own_error(inproc):
    meta = inproc.meta
    await meta.create_bucket("b", "lin", "", 1.0)
    await meta.put_object(version("b", "k", "v1"))
    results = await asyncio.gather(*(meta.get_object("b", k) for k in ("k", "none", "k", "none2")),
                                   return_exceptions=True)
    assert [r.etag for r in results[::2]] == ["v1", "v1"]
    assert all(isinstance(r, NoSuchKey) for r in results[1::2])
    assert meta._lookups is not None and meta._lookups.calls == 1  # issued together: one call


async def test_requests_that_miss_the_bucket_cache_together_fetch_the_record_once(inproc):
    """When the cached bucket record expires under load, the requests in flight share one
    fetch instead of each calling the leader; a fetch in flight when the gateway itself
    changed the bucket is not joined."""
    await inproc.meta.create_bucket("b", "lin", "", 1.0)
    ctx = inproc.ctx
    before = _calls(inproc, "get_bucket")
    got = await asyncio.gather(*(ctx.bucket("b") for _ in range(16)))
    assert {b.name for b in got} == {"b"} and _calls(inproc, "get_bucket") - before == 1
    ctx.forget_bucket("b")  # expired
    first = asyncio.ensure_future(ctx.bucket("b"))
    await asyncio.sleep(0)
    ctx.forget_bucket("b")  # changed by this gateway while the fetch was in flight
    await asyncio.gather(first, ctx.bucket("b"))
    assert _calls(inproc, "get_bucket") - before == 3
    ctx.forget_bucket("b")
    with pytest.raises(Exception) as missing:
        await asyncio.gather(*(ctx.bucket("nob") for _ in range(4)))
    assert type(missing.value).__name__ == "NoSuchBucket" and _calls(inproc, "get_bucket") - before == 4


async def test_a_bucket_fetch_overtaken_by_a_change_of_this_gateway_is_not_cached(inproc):
    """A fetch that read the record before this gateway changed the bucket (and forgot its
    cached record) answers the request that started it, but is not cached: the next
    request reads the record as the change left it."""
    await inproc.meta.create_bucket("b", "lin", "", 1.0)
    ctx = inproc.ctx
    real = ctx.meta.get_bucket
    fetched, release = asyncio.Event(), asyncio.Event()

    async def held(name):
        record = await real(name)  # read before the change
        fetched.set()
        await release.wait()
        return record

    ctx.meta.get_bucket = held
    try:
        first = asyncio.ensure_future(ctx.bucket("b"))
        await fetched.wait()
    finally:
        ctx.meta.get_bucket = real
    await inproc.meta.set_bucket_versioning("b", "Enabled")
    ctx.forget_bucket("b")  # as the versioning handler does after the change
    release.set()
    assert (await first).versioning == ""  # the request that began before the change
    assert (await ctx.bucket("b")).versioning == "Enabled"


async def test_a_bucket_record_fetched_while_this_gateway_deletes_the_bucket_is_not_served_after(inproc):
    """DeleteBucket forgets the cached record once the delete is done too: a record read
    while the delete was under way is not served once it answered."""
    await inproc.s3("create_bucket", Bucket="gone")
    ctx = inproc.ctx
    real = ctx.meta.delete_bucket
    entered, release = asyncio.Event(), asyncio.Event()

    async def held(name):
        entered.set()
        await release.wait()
        return await real(name)

    ctx.meta.delete_bucket = held
    try:
        deleting = asyncio.ensure_future(inproc.s3("delete_bucket", Bucket="gone"))
        await entered.wait()
        assert (await ctx.bucket("gone")).name == "gone"  # read while the delete is under way
        release.set()
        await deleting
    finally:
        ctx.meta.delete_bucket = real
    with pytest.raises(NoSuchBucket):
        await ctx.bucket("gone")

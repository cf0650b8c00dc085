"""``POST /v1/commands`` on an in-process metadata node (metadata.command_batch_http): one
result per command in order, one command's error does not fail the others, a batch
resent with the same sessions is applied once, the call is bounded; and concurrent S3
PUTs through the gateway make fewer command calls than PUTs."""
from __future__ import annotations

import asyncio
import functools
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from metadata.api import commands as c
from objstore.coalescing import route_missing
from metadata.api.commands import command_to_dict
from metadata.app import METRICS as METADATA_METRICS, REPLICATOR
from metadata.command_batch_http import MAX_COMMANDS
from objstore.errors import InvalidArgument, ObjstoreError
from objstore.types import ObjectVersion


def create(name: str, seq: int) -> dict:
    return command_to_dict(c.CreateBucket(name, "owner", "", 1.0).with_session("batch-test/1", seq, 1))


async def test_each_command_gets_its_own_result_and_a_resent_batch_applies_once(inproc):
    meta = inproc.meta
    await meta.create_bucket("taken", "owner", "", 1.0)
    malformed = {"v": 1, "type": "NoSuchCommand", "args": {}}
    body = {"commands": [create("fresh", 1), create("taken", 2), malformed, create("fresh2", 3)]}
    first = (await meta._call("POST", "/v1/commands", body=body))["results"]
    assert first[0]["value"]["name"] == "fresh"
    assert first[1]["error"]["code"] == "BucketAlreadyOwnedByYou"
    assert first[2]["error"]["code"] == "InvalidArgument"
    assert first[3]["value"]["name"] == "fresh2"
    assert first[0]["value"]["policy"] == inproc.default_policy  # the node's default, as for one command
    # Resent with the same sessions (a lost answer): the first outcomes, not "already owned".
    again = (await meta._call("POST", "/v1/commands", body=body))["results"]
    assert again == first
    assert sorted(b.name for b in await meta.list_buckets()) == ["fresh", "fresh2", "taken"]


async def test_a_batch_is_bounded(inproc):
    with pytest.raises(InvalidArgument):
        await inproc.meta._call("POST", "/v1/commands", body={"commands": []})
    too_many = [create(f"b{i}", i + 1) for i in range(MAX_COMMANDS + 1)]
    with pytest.raises(InvalidArgument):
        await inproc.meta._call("POST", "/v1/commands", body={"commands": too_many})
    assert await inproc.meta.list_buckets() == []


def _command_calls(inproc) -> float:
    reg = inproc.metadata.app[METADATA_METRICS].registry
    return sum(reg.get_sample_value("objstore_requests_total", {"role": "metadata", "op": op, "status": "200"}) or 0
               for op in ("command", "commands"))


async def test_concurrent_puts_through_the_gateway_make_fewer_command_calls_than_puts(inproc):
    await inproc.s3("create_bucket", Bucket="many")
    before = _command_calls(inproc)
    puts = 16
    # Threads of their own: the loop's default executor also runs the storage nodes' fsyncs.
    with ThreadPoolExecutor(puts) as pool:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(pool, functools.partial(
            inproc.s3_client.put_object, Bucket="many", Key=f"k{i}", Body=b"x" * 100)) for i in range(puts)))
    calls = _command_calls(inproc) - before
    assert 0 < calls < puts
    listed = await inproc.s3("list_objects_v2", Bucket="many")
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(f"k{i}" for i in range(puts))


async def test_a_missing_route_is_recognised_as_such(inproc):
    """What a metadata service older than the batch route answers (aiohttp's 404 page) is
    what the client takes for "no such route" and falls back to single calls on."""
    with pytest.raises(ObjstoreError) as missing:
        await inproc.meta._call("POST", "/v1/no-such-route", body={"commands": []})
    assert route_missing(missing.value)
    with pytest.raises(ObjstoreError) as refused:
        await inproc.meta._call("POST", "/v1/commands", body={"commands": []})
    assert not route_missing(refused.value)


@pytest.mark.parametrize("lost", ["after it was applied", "while the leader still works on it"])
async def test_a_batch_whose_answer_was_lost_is_resent_applied_once_and_each_caller_gets_its_first_outcome(
        inproc, lost):
    """The batch call reaches the leader, but its answer is lost (a timeout at the client),
    after the leader applied it or while the first call is still being served: the client
    resends the same commands with the same sessions. Each is applied once, and each caller
    gets the outcome of that application, not of a second one (which would be "already
    exists", "no such bucket" or "precondition failed")."""
    meta = inproc.meta
    await meta.create_bucket("old", "owner", "", 1.0)
    await meta.create_bucket("objs", "owner", "", 1.0)
    fsm = inproc.metadata.app[REPLICATOR].fsm
    runs: Counter = Counter()
    real_run = fsm._run

    def counting_run(cmd):
        runs[(cmd.client_id, cmd.seq)] += 1
        return real_run(cmd)

    fsm._run = counting_run
    batch_calls: list[list] = []
    first: list[asyncio.Task] = []
    real_attempt = meta._attempt

    async def losing_the_first_batch_answer(addr, method, path_qs, data, timeout):
        if path_qs == "/v1/commands" and not first:
            first.append(asyncio.ensure_future(real_attempt(addr, method, path_qs, data, timeout)))
            if lost == "after it was applied":
                batch_calls.append((await first[0])["results"])
            raise asyncio.TimeoutError()  # the answer never arrives
        answer = await real_attempt(addr, method, path_qs, data, timeout)
        if path_qs == "/v1/commands":
            batch_calls.append(answer["results"])
        return answer

    meta._attempt = losing_the_first_batch_answer
    version = ObjectVersion("objs", "k", meta._hlc.next(), 3, "0" * 32, 1.0)
    results = await asyncio.gather(
        meta.create_bucket("n1", "owner", "", 1.0), meta.create_bucket("n2", "owner", "", 1.0),
        meta.delete_bucket("old"), meta.put_version(version, if_none_match=True),
        meta.create_bucket("n3", "owner", "", 1.0), meta.create_bucket("old", "owner", "", 1.0),
        return_exceptions=True)
    meta._attempt = real_attempt
    if lost != "after it was applied":
        batch_calls.append((await first[0])["results"])
    # One batch, sent twice; both calls were answered alike (the second from the sessions).
    assert len(batch_calls) == 2 and len(batch_calls[0]) >= 5 and batch_calls[0] == batch_calls[1]
    assert [b.name for b in results[:2]] + [results[4].name] == ["n1", "n2", "n3"]
    assert not isinstance(results[2], BaseException)  # deleted, not NoSuchBucket
    assert not isinstance(results[3], BaseException)  # written, not PreconditionFailed
    # "old" was created again after its deletion: the outcome of the first application.
    assert results[5].name == "old"
    assert len(runs) == 6 and all(n == 1 for n in runs.values()), runs
    assert sorted(b.name for b in await meta.list_buckets()) == ["n1", "n2", "n3", "objs", "old"]
    assert (await meta.get_object("objs", "k")).etag == version.etag

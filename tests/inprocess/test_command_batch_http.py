"""``POST /v1/commands`` on an in-process metadata node (metadata.command_batch_http): one
result per command in order, one command's error does not fail the others, a batch
resent with the same sessions is applied once, the call is bounded; and concurrent S3
PUTs through the gateway make fewer command calls than PUTs."""
from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor

import pytest

from metadata.api import commands as c
from metadata.api.command_batch import route_missing
from metadata.api.commands import command_to_dict
from metadata.app import METRICS as METADATA_METRICS
from metadata.command_batch_http import MAX_COMMANDS
from objstore.errors import InvalidArgument, ObjstoreError


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

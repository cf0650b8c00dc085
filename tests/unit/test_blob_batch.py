"""Small blob writes in one call: the wire form (objstore.node.blob_batch) and the lanes
that coalesce them per node (gateway.datapath.blob_lanes), against a fake storage client
whose calls finish when the test says."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.datapath.blob_lanes import BlobLanes, weight
from objstore.errors import InsufficientStorage, InternalError, InvalidArgument, ServiceUnavailable
from objstore.node import blob_batch
from objstore.node.blob_batch import BlobWrite
from tests.harness.spawn import spawner


def blob(i: int, size: int = 10, key: str | None = None) -> BlobWrite:
    return BlobWrite(f"v{i}", i % 3, "b", key or f"k{i}", "replica:3", bytes([i % 256]) * size)


# --- the wire form ---------------------------------------------------------------------------


def test_a_request_decodes_to_the_blobs_it_was_encoded_from() -> None:
    blobs = [blob(1, 0), blob(2, 4096, key="dir/ä\nkey"), blob(3, 7)]
    decoded = blob_batch.decode_request(blob_batch.encode_request(blobs))
    assert [(bid.version_id, bid.shard) for bid, _ in decoded] == [("v1", 1), ("v2", 2), ("v3", 0)]
    assert [(b.version_id, b.shard, b.bucket, b.key, b.policy, bytes(b.data)) for _, b in decoded] == \
        [(b.version_id, b.shard, b.bucket, b.key, b.policy, bytes(b.data)) for b in blobs]


def _head(entries: list[dict[str, Any]]) -> bytes:
    return json.dumps({"blobs": entries}).encode() + b"\n"


GOOD = {"vid": "v1", "shard": 0, "bucket": "b", "key": "k", "policy": "replica:3", "size": 3}


@pytest.mark.parametrize("body, why", [
    (b"", "no head line"),
    (b"not json\nabc", "head line"),
    (b'{"other": []}\nabc', "head line"),
    (_head([]), "1 to 256"),
    (_head([dict(GOOD)] * 257) + b"abc" * 257, "1 to 256"),
    (_head([{k: v for k, v in GOOD.items() if k != "policy"}]) + b"abc", "lacks"),
    (_head([dict(GOOD, size=-1)]) + b"abc", "whole numbers"),
    (_head([dict(GOOD, size="3")]) + b"abc", "whole numbers"),
    (_head([dict(GOOD, shard=True)]) + b"abc", "whole numbers"),
    (_head([dict(GOOD, key=7)]) + b"abc", "strings"),
    (_head([dict(GOOD, vid="../x")]) + b"abc", "invalid version id"),
    (_head([dict(GOOD, shard=70000)]) + b"abc", "invalid shard"),
    (_head([dict(GOOD, size=4)]) + b"abc", "ends past the body"),
    (_head([dict(GOOD), dict(GOOD, vid="v2")]) + b"abcab", "ends past the body"),
    (_head([dict(GOOD)]) + b"abcd", "follow the last blob"),
])
def test_a_malformed_request_is_refused_whole(body: bytes, why: str) -> None:
    with pytest.raises(InvalidArgument, match="malformed blob batch") as info:
        blob_batch.decode_request(body)
    assert why in info.value.message


def test_a_request_over_the_body_limit_is_refused() -> None:
    big = [BlobWrite("v1", 0, "b", "k", "replica:3", b"x" * blob_batch.MAX_BODY)]
    with pytest.raises(InvalidArgument, match="at most"):
        blob_batch.decode_request(blob_batch.encode_request(big))


def test_an_answer_gives_each_blob_its_result_or_its_own_error() -> None:
    raw = blob_batch.encode_answer([(3, "00000000000000ab"), InsufficientStorage("full"), (0, "ef46db3751d8e999")])
    out = blob_batch.decode_answer(raw, 3)
    assert out[0] == {"size": 3, "xxh64": "00000000000000ab"}
    assert isinstance(out[1], InsufficientStorage) and out[1].message == "full"
    assert out[2] == {"size": 0, "xxh64": "ef46db3751d8e999"}


@pytest.mark.parametrize("raw", [b"nope", b'{"results": {}}', b'{"results": [{"size": 1, "xxh64": "00"}]}'])
def test_an_answer_of_the_wrong_shape_or_count_is_an_error(raw: bytes) -> None:
    with pytest.raises(InternalError):
        blob_batch.decode_answer(raw, 2)


def test_weight_bounds_the_encoded_request() -> None:
    blobs = [blob(1, 100, key="\x01" * 1024), blob(2, 5, key="ü" * 1024), blob(3, 0)]
    assert len(blob_batch.encode_request(blobs)) <= sum(weight(b) for b in blobs)


# --- the lanes --------------------------------------------------------------------------------


class FakeStorage:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[str]]] = []  # (kind, address, version ids)
        self.gates: list[asyncio.Future[None]] = []  # one per call, finished by the test
        self.answers: dict[str, Any] = {}  # version id -> an exception to answer it with, in a batch
        self.batch_error: Exception | None = None

    async def _call(self, kind: str, address: str, vids: list[str]) -> None:
        gate = asyncio.get_running_loop().create_future()
        self.calls.append((kind, address, vids))
        self.gates.append(gate)
        await gate

    call_seconds = 30.0

    async def put_blob(self, address: str, version_id: str, shard: int, bucket: str, key: str, policy: str,
                       size: int, body: bytes, *, timeout: float | None = None) -> dict:
        assert isinstance(body, bytes) and len(body) == size
        await self._call("one", address, [version_id])
        return {"size": size, "xxh64": "1" * 16}

    async def put_blobs(self, address: str, blobs: list[BlobWrite], *,
                        timeout: float | None = None) -> list[dict | Exception]:
        await self._call("batch", address, [b.version_id for b in blobs])
        if self.batch_error is not None:
            raise self.batch_error
        return [self.answers.get(b.version_id) or {"size": len(b.data), "xxh64": "2" * 16} for b in blobs]


def lanes(storage: FakeStorage, clock=None, **kwargs: Any) -> BlobLanes:
    return BlobLanes(storage, spawner(), coalesce=True, **({"clock": clock} if clock else {}), **kwargs)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def put(lane: BlobLanes, i: int, size: int = 10, address: str = "n1") -> asyncio.Task:
    b = blob(i, size)
    return asyncio.create_task(lane.put(address, b.version_id, b.shard, b.bucket, b.key, b.policy, bytes(b.data)))


async def open_gates(storage: FakeStorage) -> None:
    for gate in storage.gates:
        if not gate.done():
            gate.set_result(None)
    await settle()


async def test_the_first_blob_goes_alone_and_those_meanwhile_in_one_batch() -> None:
    storage = FakeStorage()
    lane = lanes(storage)
    first = put(lane, 1)
    await settle()
    rest = [put(lane, i) for i in range(2, 6)]
    await settle()
    assert storage.calls == [("one", "n1", ["v1"])]
    await open_gates(storage)
    assert first.done() and first.result() == {"size": 10, "xxh64": "1" * 16}
    assert storage.calls[1] == ("batch", "n1", ["v2", "v3", "v4", "v5"])
    assert not any(t.done() for t in rest)  # answered only with their call
    await open_gates(storage)
    assert [t.result() for t in rest] == [{"size": 10, "xxh64": "2" * 16}] * 4
    assert (lane.calls, lane.blobs) == (2, 5)


async def test_a_batch_is_bounded_by_count_and_by_bytes() -> None:
    storage = FakeStorage()
    lane = lanes(storage, max_batch=3, max_batch_bytes=2 * weight(blob(0, 1000)))
    first = put(lane, 0)
    await settle()
    small = [put(lane, i) for i in range(1, 5)]  # 4 small: 3 in one call, 1 in the next
    await settle()
    await open_gates(storage)
    assert storage.calls[1] == ("batch", "n1", ["v1", "v2", "v3"])
    await open_gates(storage)
    big = [put(lane, i, 1000) for i in range(5, 8)]
    await settle()
    while not all(t.done() for t in big + small + [first]):
        await open_gates(storage)
    assert [c[2] for c in storage.calls[2:]] == [["v4"], ["v5", "v6"], ["v7"]]


async def test_large_blobs_and_a_full_waiting_room_go_alone_at_once() -> None:
    storage = FakeStorage()
    lane = lanes(storage, max_waiting=2)
    put(lane, 1)
    await settle()
    put(lane, 2), put(lane, 3)
    await settle()
    put(lane, 4)  # the waiting room is full
    put(lane, 5, 256 * 1024 + 1)  # too large to be held for a batch
    await settle()
    assert [c[2] for c in storage.calls] == [["v1"], ["v4"], ["v5"]]
    while storage.gates and not all(g.done() for g in storage.gates):
        await open_gates(storage)
    assert storage.calls[-1] == ("batch", "n1", ["v2", "v3"])


async def test_one_refused_blob_fails_alone_and_a_failed_call_fails_every_blob() -> None:
    storage = FakeStorage()
    lane = lanes(storage)
    put(lane, 1)
    await settle()
    storage.answers["v3"] = InsufficientStorage("full")
    batch = [put(lane, i) for i in (2, 3)]
    await settle()
    await open_gates(storage)
    await open_gates(storage)
    assert batch[0].result()["size"] == 10
    assert isinstance(batch[1].exception(), InsufficientStorage)
    # a failed call: every blob it carried fails with its error
    put(lane, 4)
    await settle()
    storage.batch_error = ServiceUnavailable("node went away")
    failed = [put(lane, i) for i in (5, 6, 7)]
    await settle()
    await open_gates(storage)
    await open_gates(storage)
    assert [type(t.exception()) for t in failed] == [ServiceUnavailable] * 3


async def test_a_node_without_the_route_gets_single_calls_and_the_route_again_later() -> None:
    now = [0.0]
    storage = FakeStorage()
    lane = lanes(storage, clock=lambda: now[0])
    storage.batch_error = InternalError("HTTP 404: b'404: Not Found'")
    put(lane, 1)
    await settle()
    batch = [put(lane, i) for i in (2, 3)]
    await settle()
    while not all(t.done() for t in batch):
        await open_gates(storage)
    assert [t.result()["xxh64"] for t in batch] == ["1" * 16] * 2  # each resent alone, stored
    assert [c[0] for c in storage.calls] == ["one", "batch", "one", "one"]
    storage.calls.clear()
    put(lane, 4)
    await settle()
    more = [put(lane, i) for i in (5, 6)]
    while not all(t.done() for t in more):
        await open_gates(storage)
    assert [c[0] for c in storage.calls] == ["one", "one", "one"]  # no batch tried within the minute
    storage.calls.clear()
    storage.batch_error = None
    now[0] += 61
    put(lane, 7)
    await settle()
    later = [put(lane, i) for i in (8, 9)]
    while not all(t.done() for t in later):
        await open_gates(storage)
    assert [c[0] for c in storage.calls] == ["one", "batch"]


async def test_coalescing_off_sends_every_blob_alone() -> None:
    storage = FakeStorage()
    lane = BlobLanes(storage, spawner(), coalesce=False)  # type: ignore[arg-type]
    tasks = [put(lane, i) for i in range(3)]
    await settle()
    assert [c[0] for c in storage.calls] == ["one"] * 3
    await open_gates(storage)
    assert all(t.done() for t in tasks) and lane.calls == 0


async def test_a_blob_whose_put_was_cancelled_before_its_call_is_not_sent() -> None:
    """A PUT cancelled while its blob waits (an abandoned straggler, a client gone) takes
    its blob out of the lane: no call writes a blob nobody waits for."""
    storage = FakeStorage()
    lane = lanes(storage)
    first = put(lane, 1)
    await settle()
    waiting = [put(lane, i) for i in (2, 3, 4)]
    await settle()
    waiting[1].cancel()
    await settle()
    await open_gates(storage)
    assert first.done()
    assert storage.calls[1] == ("batch", "n1", ["v2", "v4"])
    # a lone survivor goes as a single write, its cancelled fellow is not sent
    lone = [put(lane, i) for i in (5, 6)]
    await settle()
    lone[0].cancel()
    await settle()
    await open_gates(storage)
    assert [t.result()["size"] for t in (waiting[0], waiting[2])] == [10, 10]
    assert storage.calls[2:] == [("one", "n1", ["v6"])]
    await open_gates(storage)
    assert lone[1].result()["size"] == 10
    # cancelled within the gather ticks of an idle lane: no call at all
    cancelled = put(lane, 7)
    await asyncio.sleep(0)
    cancelled.cancel()
    await settle()
    assert len(storage.calls) == 3 and not lane._waiting and not lane._drains


@pytest.mark.parametrize("field", ["bucket", "key", "policy"])
def test_a_name_that_is_not_unicode_text_is_refused_whole(field: str) -> None:
    """JSON may carry a lone surrogate (\\ud800), which no blob header can hold: the batch is
    refused as malformed (InvalidArgument) rather than failing later as an internal error."""
    odd = dict(GOOD, vid="v2")
    odd[field] = "x\ud800"
    body = _head([dict(GOOD), odd]) + b"abcabc"
    assert b"\\ud800" in body
    with pytest.raises(InvalidArgument, match="malformed blob batch") as info:
        blob_batch.decode_request(body)
    assert "blob 1" in info.value.message

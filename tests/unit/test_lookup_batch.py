"""Strong version lookups coalesced while one is in flight (metadata.api.lookup_batch), against
a fake service whose calls finish when the test says: the first lookup goes alone, those
that come meanwhile go in one batch call after it (never in the call already in flight),
each caller gets its own lookup's answer or error, a failed batch call fails all it
carried, a service without the batch route gets single calls, waiting is bounded; and the
batch body and answers round-trip through the server's own handling."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from metadata import lookup_batch_http
from metadata.api.lookup_batch import MAX_ITEM_BYTES, LookupBatcher, batch_body, encode, result_of
from metadata.fsm.machine import MetadataFSM
from objstore.errors import (
    InvalidArgument, MethodNotAllowed, NoSuchBucket, NoSuchKey, ObjstoreError, ServiceUnavailable, error_from_code,
    raise_for_error_body,
)


class FakeService:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []  # (path, keys looked up)
        self.gates: list[asyncio.Future[Any]] = []  # one per call, finished by the test

    async def get(self, path: str, query: dict[str, Any], seconds: float) -> Any:
        return await self._call(path, [query["key"]])

    async def post(self, path: str, data: bytes, seconds: float) -> Any:
        return await self._call(path, [d["key"] for d in json.loads(data)["lookups"]])

    async def _call(self, path: str, keys: list[str]) -> Any:
        gate = asyncio.get_running_loop().create_future()
        self.calls.append((path, keys))
        self.gates.append(gate)
        return await gate

    def answer(self, i: int, value: Any = None, error: BaseException | None = None) -> None:
        if error is not None:
            self.gates[i].set_exception(error)
        else:
            self.gates[i].set_result(value)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def start(batcher: LookupBatcher, key: str, version_id: str | None = None) -> asyncio.Task[Any]:
    return asyncio.ensure_future(batcher.lookup("b", key, version_id))


def found(key: str) -> dict[str, Any]:
    return {"version": {"key": key}, "versioning": ""}


async def test_the_first_goes_alone_and_those_meanwhile_go_together_with_their_own_results():
    svc = FakeService()
    batcher = LookupBatcher(svc.get, svc.post, timeout=10.0)
    first = start(batcher, "k0")
    await settle()
    rest = [start(batcher, k) for k in ("k1", "k2", "k3")]
    await settle()
    assert svc.calls == [("/v1/object", ["k0"])]
    svc.answer(0, found("k0"))
    await settle()
    assert svc.calls[1] == ("/v1/objects", ["k1", "k2", "k3"])
    missing = error_from_code("NoSuchKey", "no", {"delete_marker": True, "version_id": "v9"}).to_dict()
    svc.answer(1, {"results": [{"value": found("k1")}, {"error": missing}, {"value": found("k3")}]})
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert results[0] == found("k0") and results[1] == found("k1") and results[3] == found("k3")
    assert isinstance(results[2], NoSuchKey) and results[2].extra == {"delete_marker": True, "version_id": "v9"}
    assert batcher.calls == 2


async def test_a_lookup_that_comes_while_a_batch_is_in_flight_waits_for_the_next_call():
    """What keeps a coalesced read linearizable: a lookup issued after a call was sent never
    takes that call's answer (whose read index may predate a write acknowledged since)."""
    svc = FakeService()
    batcher = LookupBatcher(svc.get, svc.post, timeout=10.0)
    first = start(batcher, "k")
    await settle()
    second = [start(batcher, "k"), start(batcher, "j")]
    await settle()
    late = start(batcher, "k")  # issued while the batch of ``second`` is not yet sent: joins it
    await settle()
    svc.answer(0, found("old"))
    await settle()
    assert svc.calls[1] == ("/v1/objects", ["k", "j", "k"])
    latest = start(batcher, "k")  # issued while that batch is in flight: the next call
    await settle()
    assert len(svc.calls) == 2
    svc.answer(1, {"results": [{"value": found("mid")}] * 3})
    await settle()
    assert svc.calls[2] == ("/v1/object", ["k"])
    svc.answer(2, found("new"))
    assert (await first) == found("old")
    assert [await t for t in second] + [await late] == [found("mid")] * 3
    assert (await latest) == found("new")


async def test_a_failed_batch_call_fails_every_lookup_it_carried():
    svc = FakeService()
    batcher = LookupBatcher(svc.get, svc.post, timeout=10.0)
    first = start(batcher, "k0")
    await settle()
    rest = [start(batcher, k) for k in ("k1", "k2")]
    await settle()
    svc.answer(0, found("k0"))
    await settle()
    svc.answer(1, error=ServiceUnavailable("no metadata leader answered"))
    assert (await first) == found("k0")
    for t in rest:
        with pytest.raises(ServiceUnavailable):
            await t


async def test_a_service_without_the_batch_route_gets_single_calls():
    svc = FakeService()
    batcher = LookupBatcher(svc.get, svc.post, timeout=10.0)
    first = start(batcher, "k0")
    await settle()
    rest = [start(batcher, k) for k in ("k1", "k2")]
    await settle()
    svc.answer(0, found("k0"))
    await settle()
    with pytest.raises(ObjstoreError) as page:  # what a node without the route answers
        raise_for_error_body(404, b"404: Not Found")
    svc.answer(1, error=page.value)
    await settle()
    assert [c[0] for c in svc.calls[2:]] == ["/v1/object", "/v1/object"]
    svc.answer(2, found("k1"))
    svc.answer(3, error=NoSuchKey("gone"))
    assert (await rest[0]) == found("k1")
    with pytest.raises(NoSuchKey):
        await rest[1]
    await first


async def test_waiting_is_bounded_in_number_and_time():
    now = [0.0]
    svc = FakeService()
    batcher = LookupBatcher(svc.get, svc.post, timeout=5.0, max_waiting=2, clock=lambda: now[0])
    first = start(batcher, "k0")
    await settle()
    waiting = [start(batcher, "k1"), start(batcher, "k2")]
    await settle()
    beyond = start(batcher, "k3")  # the lane is full: it goes alone, at once
    await settle()
    assert svc.calls[1] == ("/v1/object", ["k3"])
    svc.answer(1, found("k3"))
    assert (await beyond) == found("k3")
    now[0] = 6.0  # the waiting ones came over the timeout ago: failed, unsent
    svc.answer(0, found("k0"))
    await first
    for t in waiting:
        with pytest.raises(ServiceUnavailable):
            await t
    assert len(svc.calls) == 2


async def test_a_large_lookup_goes_alone():
    svc = FakeService()
    batcher = LookupBatcher(svc.get, svc.post, timeout=10.0)
    first = start(batcher, "k0")
    await settle()
    big = start(batcher, "x" * MAX_ITEM_BYTES)
    await settle()
    assert svc.calls[1] == ("/v1/object", ["x" * MAX_ITEM_BYTES])
    svc.answer(0, found("k0"))
    svc.answer(1, found("big"))
    assert (await first, await big) == (found("k0"), found("big"))


def test_the_batch_body_is_what_the_service_reads_and_its_answers_what_the_client_reads():
    fsm = MetadataFSM()
    items = [("b", "k", None), ("b", "é/ü \"q\"", "v1"), ("nob", "k", None)]
    body = json.loads(batch_body([encode(i) for i in items]))
    assert body == {"lookups": [{"bucket": "b", "key": "k"}, {"bucket": "b", "key": "é/ü \"q\"", "version_id": "v1"},
                                {"bucket": "nob", "key": "k"}]}
    lookups = lookup_batch_http.lookups_of(body)
    results = [result_of(r) for r in json.loads(json.dumps(lookup_batch_http.answer_all(fsm, lookups)))]
    assert all(isinstance(r, NoSuchBucket) for r in results)
    # A malformed lookup fails alone.
    mixed = lookup_batch_http.answer_all(fsm, [{"bucket": "b"}, {"bucket": "b", "key": "k"}, "k"])
    assert [r["error"]["code"] for r in mixed] == ["InvalidArgument", "NoSuchBucket", "InvalidArgument"]
    assert isinstance(result_of({"nonsense": 1}), ObjstoreError)
    assert isinstance(result_of({"error": MethodNotAllowed("marker").to_dict()}), MethodNotAllowed)


def test_a_batch_is_bounded():
    with pytest.raises(InvalidArgument):
        lookup_batch_http.lookups_of({"lookups": []})
    with pytest.raises(InvalidArgument):
        lookup_batch_http.lookups_of({"lookups": [{"bucket": "b", "key": "k"}] * (lookup_batch_http.MAX_LOOKUPS + 1)})
    with pytest.raises(InvalidArgument):
        lookup_batch_http.lookups_of([{"bucket": "b", "key": "k"}])

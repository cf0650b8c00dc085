"""Coalescing lanes under faults (objstore.coalescing and its users): an item never waits
longer than a single call would.

Fake transports whose calls hang (a peer that takes connections and never answers: the
call ends when the seconds it was given are over) or answer slowly (a node that takes
longer than usual but answers), on the real clock with bounds of a fraction of a second.
A single call to such a peer ends within the lane's ``timeout``; so must an item that came
while another call to it was in flight: it goes in a call of its own once the call ahead
has run ``stall`` seconds, given what is left of its time, instead of waiting for the
call ahead to time out and then for its own (two bounds). A slow node that answers each
call within the bound stores every item, as single calls would.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from gateway.datapath.blob_lanes import BlobLanes
from gateway.datapath.manifest_lanes import ManifestLanes
from metadata.api.command_batch import CommandBatcher
from metadata.api.lookup_batch import LookupBatcher
from objstore.coalescing import Lanes
from objstore.errors import InternalError, ServiceUnavailable
from objstore.manifest import CommitManifest
from tests.harness.spawn import spawner

T = 0.5  # a single call's bound (the lanes' timeout) in these tests
SLACK = 0.2  # scheduling on a busy machine (two bounds, as before the fix, are ~0.95 s)


class Peer:
    """A peer whose calls take ``delay`` seconds (None: never answer); a call gives up,
    ServiceUnavailable, when the seconds it was given are over. Records each call's start
    (monotonic), the items it carried and the seconds it was given; ``in_flight`` counts
    calls not yet ended (``most`` is its highest)."""

    def __init__(self, delay: float | None = None) -> None:
        self.delay = delay
        self.calls: list[tuple[float, list[Any], float]] = []
        self.in_flight = 0
        self.most = 0

    async def call(self, items: list[Any], seconds: float | None) -> list[str]:
        seconds = T if seconds is None else seconds
        self.calls.append((time.monotonic(), items, seconds))
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            if self.delay is None or self.delay > seconds:
                await asyncio.sleep(seconds)
                raise ServiceUnavailable(f"no answer within {seconds:.3f}s")
            await asyncio.sleep(self.delay)
            return [f"ok {i}" for i in items]
        finally:
            self.in_flight -= 1


async def timed(aw: Any) -> tuple[Any, float]:
    """(result or the exception raised, seconds taken)."""
    t0 = time.monotonic()
    try:
        out: Any = await aw
    except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
        out = exc
    return out, time.monotonic() - t0


async def behind_a_hung_call(first: Any, later: Any) -> tuple[Any, float]:
    """Start ``first`` (its call hangs), and ``later`` 50 ms after, while it is in flight:
    ``later``'s outcome and its time."""
    head = asyncio.ensure_future(first)
    await asyncio.sleep(0.05)
    out = await timed(later)
    await asyncio.gather(head, return_exceptions=True)
    return out


# --- the lanes themselves -----------------------------------------------------------------

def generic_lanes(peer: Peer, **kw: Any) -> Lanes[str, int, str]:
    async def one(lane: str, item: int, seconds: float) -> str:
        return (await peer.call([item], seconds))[0]

    async def many(lane: str, items: list[int], seconds: float) -> list[str]:
        return list(await peer.call(items, seconds))

    return Lanes(one, many, spawner(), max_batch=8, max_waiting=64, timeout=T, **kw)


async def test_an_item_behind_a_hung_call_is_answered_within_one_bound_in_a_call_of_its_own():
    peer = Peer(delay=None)
    lanes = generic_lanes(peer, stall=0.1)
    out, took = await behind_a_hung_call(lanes.submit("p", 1), lanes.submit("p", 2))
    assert isinstance(out, ServiceUnavailable)
    assert took < T + SLACK, took  # not the hung call's timeout and then its own
    # It went beside the hung call once that had run the stall bound, given what was left.
    (t1, items1, _), (t2, items2, given) = peer.calls
    assert (items1, items2) == ([1], [2])
    assert 0.1 - 0.01 <= t2 - t1 < 0.1 + SLACK and given <= T - 0.05 + 0.01, (t2 - t1, given)
    assert lanes.stalls == 1


async def test_a_slow_peer_that_answers_within_the_bound_gets_every_item_through():
    """Each call takes 0.3 s of a 0.5 s bound: a single call succeeds, and so does every
    item coalesced behind one (it goes at the stall bound, not after the call ahead)."""
    peer = Peer(delay=0.3)
    lanes = generic_lanes(peer, stall=0.05)
    first = asyncio.ensure_future(timed(lanes.submit("p", 0)))
    await asyncio.sleep(0.02)
    rest = [asyncio.ensure_future(timed(lanes.submit("p", i))) for i in range(1, 6)]
    outcomes = await asyncio.gather(first, *rest)
    assert [o for o, _ in outcomes] == [f"ok {i}" for i in range(6)]
    assert all(took < T + SLACK for _, took in outcomes), outcomes
    assert [items for _, items, _ in peer.calls] == [[0], [1, 2, 3, 4, 5]]


async def test_stalled_calls_in_flight_are_bounded_by_timeout_over_stall():
    """Items keep coming to a peer that never answers: a new call goes beside the stalled
    ones each stall bound at most, and each ends within the timeout, so a lane never has
    more than about timeout / stall + 1 calls in flight; every item is answered in time."""
    peer = Peer(delay=None)
    lanes = generic_lanes(peer, stall=0.1)
    callers = []
    for i in range(30):
        callers.append(asyncio.ensure_future(timed(lanes.submit("p", i))))
        await asyncio.sleep(0.02)
    outcomes = await asyncio.gather(*callers)
    assert all(isinstance(o, ServiceUnavailable) and took < T + SLACK for o, took in outcomes), outcomes
    assert peer.most <= T / 0.1 + 1, peer.most
    assert len(peer.calls) < 30  # still coalesced: not one call per item
    assert not lanes._drains and not lanes._waiting  # the idle lane holds nothing


async def test_a_call_that_answers_before_the_stall_bound_keeps_the_others_coalesced():
    peer = Peer(delay=0.05)
    lanes = generic_lanes(peer, stall=0.2)
    first = asyncio.ensure_future(lanes.submit("p", 0))
    await asyncio.sleep(0.01)
    rest = await asyncio.gather(*(lanes.submit("p", i) for i in range(1, 4)))
    assert await first == "ok 0" and rest == ["ok 1", "ok 2", "ok 3"]
    assert [items for _, items, _ in peer.calls] == [[0], [1, 2, 3]] and lanes.stalls == 0



async def test_items_left_over_from_a_full_call_go_beside_it_once_it_stalls():
    """More items come at once than one call takes (``max_batch``): those left over wait
    behind that call only until it has run the stall bound, as items that came later would,
    so a slow peer that answers each call within the bound stores them all (behind the
    whole call they would be sent with too little of their time left)."""
    # Behind the whole call, the second call would start 0.35 s after the first (past the
    # bound below); beside it, a stall bound (0.05 s) after.
    peer = Peer(delay=0.35)
    lanes = generic_lanes(peer, stall=0.05)
    lanes.max_batch = 2
    outcomes = await asyncio.gather(*(timed(lanes.submit("p", i)) for i in range(3)))
    assert [o for o, _ in outcomes] == ["ok 0", "ok 1", "ok 2"], outcomes
    assert all(took < T + SLACK for _, took in outcomes), outcomes
    (t1, items1, _), (t2, items2, _) = peer.calls
    assert (items1, items2) == ([0, 1], [2])
    assert 0.05 - 0.01 <= t2 - t1 < 0.05 + SLACK, t2 - t1
    assert lanes.stalls == 1


# --- each lane: blob writes, manifest writes, metadata commands and lookups ----------------------

class BlobPeer(Peer):
    call_seconds = T  # the storage client's own bound on a call

    async def put_blob(self, address: str, version_id: str, shard: int, bucket: str, key: str, policy: str,
                       size: int, body: bytes, *, timeout: float | None = None) -> dict:
        await self.call([version_id], timeout)
        return {"size": size, "xxh64": "1" * 16}

    async def put_blobs(self, address: str, blobs: list, *, timeout: float | None = None) -> list[dict]:
        await self.call([b.version_id for b in blobs], timeout)
        return [{"size": len(b.data), "xxh64": "2" * 16} for b in blobs]


def blob_put(lanes: BlobLanes, i: int) -> Any:
    return lanes.put("n1", f"v{i}", 0, "b", f"k{i}", "replica:3", b"x" * 10)


def hung_blob_lane() -> tuple[Any, Any]:
    """Default blob lanes, as the gateway makes them (bound: the storage client's own)."""
    lanes = BlobLanes(BlobPeer(delay=None), spawner(), coalesce=True)  # type: ignore[arg-type]
    return blob_put(lanes, 1), blob_put(lanes, 2)


def hung_manifest_lane() -> tuple[Any, Any]:
    peer = Peer(delay=None)

    class Storage:
        async def put_manifest(self, address: str, manifest: CommitManifest, timeout: float = T,
                               ring_epoch: int = 0) -> bool:
            await peer.call([manifest.key], timeout)
            return True

        async def put_manifests(self, address: str, manifests: list[CommitManifest], timeout: float = T,
                                ring_epoch: int = 0) -> int:
            await peer.call([m.key for m in manifests], timeout)
            return len(manifests)

    lanes = ManifestLanes(Storage(), spawner(), timeout=T)  # type: ignore[arg-type]
    return lanes.put("n1", CommitManifest("b", "k1", 1, None)), lanes.put("n1", CommitManifest("b", "k2", 2, None))


def hung_command_lane() -> tuple[Any, Any]:
    """No leader answers (a leader cut off from its majority): a PUT's commit."""
    peer = Peer(delay=None)

    async def post(path: str, data: bytes, seconds: float | None = None) -> Any:
        body = json.loads(data)
        await peer.call(body.get("commands", [body]), seconds)

    batcher = CommandBatcher(post, timeout=T)
    return batcher.send({"n": 1}), batcher.send({"n": 2})


def hung_lookup_lane() -> tuple[Any, Any]:
    peer = Peer(delay=None)

    async def get(path: str, query: dict[str, Any], seconds: float | None = None) -> Any:
        await peer.call([query["key"]], seconds)

    async def post(path: str, data: bytes, seconds: float | None = None) -> Any:
        await peer.call([d["key"] for d in json.loads(data)["lookups"]], seconds)

    batcher = LookupBatcher(get, post, timeout=T)
    return batcher.lookup("b", "k1", None), batcher.lookup("b", "k2", None)


async def test_on_every_lane_an_item_behind_a_hung_call_fails_within_a_single_calls_bound():
    """Blob writes, manifest writes, metadata commands and lookups (side by side, to keep
    the test short): an item that came while a call to a peer that never answers was in
    flight fails when a single call would have, not after that call's timeout and then
    its own."""
    lanes = {"blob": hung_blob_lane(), "manifest": hung_manifest_lane(), "command": hung_command_lane(),
             "lookup": hung_lookup_lane()}
    outcomes = await asyncio.gather(*(behind_a_hung_call(*calls) for calls in lanes.values()))
    for name, (out, took) in zip(lanes, outcomes):
        assert isinstance(out, ServiceUnavailable) and took < T + SLACK, (name, out, took)


async def test_blobs_behind_a_slow_blob_write_are_stored_as_single_writes_would_be():
    """A node that answers each call, later than the old 5 s lane bound but within the
    storage client's own (30 s here): the blobs waiting behind a slow call are stored, not
    failed 503 for having waited (the clock is the lane's; calls finish when the test says)."""
    now = [0.0]
    gates: list[asyncio.Future[None]] = []

    class Slow(BlobPeer):
        call_seconds = 30.0

        async def call(self, items: list[Any], seconds: float | None) -> list[str]:
            self.calls.append((now[0], items, seconds or 30.0))
            gates.append(asyncio.get_running_loop().create_future())
            await gates[-1]
            return []

    peer = Slow()
    lanes = BlobLanes(peer, spawner(), coalesce=True, clock=lambda: now[0])  # type: ignore[arg-type]
    first = asyncio.ensure_future(blob_put(lanes, 1))
    for _ in range(5):
        await asyncio.sleep(0)
    rest = [asyncio.ensure_future(blob_put(lanes, i)) for i in (2, 3, 4)]
    for _ in range(5):
        await asyncio.sleep(0)
    now[0] = 6.0  # the first call answers after 6 s
    gates[0].set_result(None)
    for _ in range(5):
        await asyncio.sleep(0)
    assert [items for _, items, _ in peer.calls] == [["v1"], ["v2", "v3", "v4"]]
    assert 23.9 < peer.calls[1][2] <= 24.0  # given what is left of the 30 s: 24 s
    now[0] = 12.0
    gates[1].set_result(None)
    assert (await first)["size"] == 10
    assert [r["size"] for r in await asyncio.gather(*rest)] == [10, 10, 10]


async def test_blobs_over_one_calls_bytes_go_beside_a_slow_call_once_it_stalls():
    """The blob lane's byte bound: a burst of 200 KiB blobs to one node fills a call with
    four; the fifth goes beside it at the stall bound, not after it."""
    peer = BlobPeer(delay=0.3)
    lanes = BlobLanes(peer, spawner(), coalesce=True, stall=0.1)  # type: ignore[arg-type]
    body = b"x" * (200 << 10)
    outcomes = await asyncio.gather(*(timed(lanes.put("n1", f"v{i}", 0, "b", f"k{i}", "replica:3", body))
                                      for i in range(5)))
    assert all(isinstance(o, dict) and o["size"] == len(body) for o, _ in outcomes), outcomes
    assert [len(items) for _, items, _ in peer.calls] == [4, 1]
    assert peer.calls[1][0] - peer.calls[0][0] < 0.1 + SLACK

@pytest.mark.parametrize("kind", ["command", "lookup"])
async def test_the_metadata_client_gives_a_coalesced_call_what_is_left_of_its_deadline(kind, monkeypatch):
    """The client's batchers pass the seconds the lane gives a call on to ``_call`` as its
    deadline (a single call gets the client's whole deadline)."""
    from metadata.api.client import MetadataClient

    client = MetadataClient(["127.0.0.1:1"], "secret", deadline=T)
    given: list[float | None] = []

    async def fake_call(method: str, path: str, query: Any = None, body: Any = None, *, wait: float = 0.0,
                        raw: bytes | None = None, deadline: float | None = None) -> Any:
        given.append(deadline)
        raise ServiceUnavailable("no leader")

    monkeypatch.setattr(client, "_call", fake_call)
    with pytest.raises(ServiceUnavailable):
        if kind == "command":
            assert client._commands is not None
            await client._commands.send({"n": 1})
        else:
            assert client._lookups is not None
            await client._lookups.lookup("b", "k", None)
    assert len(given) == 1 and given[0] is not None and T - 0.05 < given[0] <= T
    await client.close()


async def test_blobs_resent_alone_after_a_missing_batch_route_get_only_what_is_left_of_their_time():
    """A node without the batch route (older) that takes a while to say so: the blobs then
    go alone within what is left of their bound, not a whole bound again."""
    class Old(BlobPeer):
        async def put_blobs(self, address: str, blobs: list, *, timeout: float | None = None) -> list[dict]:
            await asyncio.sleep(0.6 * T)
            raise InternalError("HTTP 404: Not Found")

    peer = Old(delay=None)
    lanes = BlobLanes(peer, spawner(), coalesce=True)  # type: ignore[arg-type]
    outcomes = await asyncio.gather(*(timed(blob_put(lanes, i)) for i in range(2)))
    assert all(isinstance(o, ServiceUnavailable) and took < T + SLACK / 2 for o, took in outcomes), outcomes
    assert all(given <= 0.4 * T + 0.02 for _, _, given in peer.calls), peer.calls

"""The storage node's repair worker without a network: the token bucket on an injected
clock, a lost ec shard rebuilt byte for byte from K survivors, a replica copied from the
first survivor that answers, and ``objstore repair status`` rendering."""
from __future__ import annotations

import asyncio
import contextlib
import os

from objstore.erasure import encode_stream
from objstore.erasure.data_layout import DataLayout
from objstore.errors import ServiceUnavailable
from objstore.node.repair_worker import RepairWorker, TokenBucket
from objstore.repair_records import RepairTask, Source
from objstore.types import Policy
from ops.cli.repair import progress_line, render


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_token_bucket_paces_to_its_rate():
    clock = Clock()
    bucket = TokenBucket(rate=1000, burst=500, clock=clock, sleep=clock.sleep)

    async def go():
        for _ in range(10):
            await bucket.take(250)

    asyncio.run(go())
    # 2500 bytes at 1000 B/s after a 500-byte burst: 2 s of waiting
    assert abs(sum(clock.slept) - 2.0) < 1e-9


class FakeStream:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def iter_chunks(self):
        for i in range(0, len(self.data), 7000):
            yield self.data[i:i + 7000]


class FakeStorage:
    """Blobs by (address, blob id, shard); an address in ``down`` refuses."""

    def __init__(self, blobs: dict, down: set[str] = frozenset()) -> None:
        self.blobs, self.down = blobs, down

    @contextlib.asynccontextmanager
    async def get_blob(self, address, version_id, shard, start=None, end=None):
        if address in self.down:
            raise ServiceUnavailable(f"{address} down")
        yield FakeStream(self.blobs[(address, version_id, shard)])


class FakeStore:
    def __init__(self) -> None:
        self.put_args = None

    async def put(self, bid, bucket, key, policy, size, chunks):
        data = b"".join([c async for c in chunks])
        assert len(data) == size
        self.put_args = (bid, bucket, key, policy, data)


def worker(storage) -> tuple[RepairWorker, FakeStore]:
    store = FakeStore()

    async def call(path, body):
        raise AssertionError("no leader here")

    return RepairWorker("n9", store, storage, call, TokenBucket(0, 0)), store


def test_a_lost_ec_shard_is_rebuilt_from_k_survivors():
    layout = DataLayout.for_policy(Policy.parse("ec:4+2"), stripe_size=256 * 1024)
    stripes = layout.stripes
    body = os.urandom(3 * stripes.stripe_bytes + 12345)
    shards = [b"".join(col) for col in zip(*encode_stream(stripes, [body]))]
    for lost in (1, 4):  # a data shard, a parity shard
        alive = [i for i in range(6) if i != lost]
        blobs = {(f"a{i}", "vid", i): shards[i] for i in alive}
        sources = tuple(Source(f"n{i}", f"a{i}", i) for i in alive)
        t = RepairTask("t", "b", "k", "vid", 0, str(layout), len(body), lost, "n9", (), (), sources)
        w, store = worker(FakeStorage(blobs, down={"a0"}))  # one survivor down: others used
        assert asyncio.run(w.copy(t))
        bid, _, _, header, data = store.put_args
        assert (bid.version_id, bid.shard) == ("vid", lost)
        assert data == shards[lost]
        assert header == str(layout.with_size(len(body)))


def test_a_replica_is_copied_from_the_first_survivor_that_answers():
    body = os.urandom(50_000)
    blobs = {("a2", "vid", 0): body}
    t = RepairTask("t", "b", "k", "vid", 0, "replica:3", len(body), 0, "n9", (), (),
                   (Source("n1", "a1", 0), Source("n2", "a2", 0)))
    w, store = worker(FakeStorage(blobs, down={"a1"}))
    assert asyncio.run(w.copy(t)) and store.put_args[4] == body
    w, store = worker(FakeStorage({}, down={"a1", "a2"}))
    assert not asyncio.run(w.copy(t)) and store.put_args is None


def test_repair_status_rendering():
    st = {"objects_below_policy": 3, "bytes_below_policy": 3 * 1024**2, "in_flight": 1,
          "in_flight_bytes": 1024**2, "queued": 2, "repaired_objects": 7, "repaired_bytes": 7 * 1024**2,
          "rate_bytes_per_second": 1024**2, "eta_seconds": 3.0, "failed_tasks": 0, "damaged_copies": 0}
    text = render(st)
    assert "below policy  3" in text and "3.0 MiB" in text and "ETA 0m03s" in text
    line = progress_line(st, start_bytes=12 * 1024**2)
    assert "75.0%" in line and "3 objects" in line
    assert "multipart" not in text
    assert "parts of multipart uploads in progress below policy: " in render({**st, "upload_parts_below_policy": 2})


def test_a_task_is_committed_only_after_its_copy_is_stored():
    body = os.urandom(1000)
    t = RepairTask("t", "b", "k", "vid", 0, "replica:3", len(body), 0, "n9", ("n1",), ("n1", "n9"),
                   (Source("n1", "a1", 0),))
    calls: list[tuple[str, dict]] = []
    store = FakeStore()

    async def call(path, body_):
        calls.append((path, body_))
        if path.endswith("lease"):
            return {"tasks": [t.to_dict()]}
        assert store.put_args is not None  # durable before the commit is asked for
        return {"applied": True}

    repaired: list[int] = []
    w = RepairWorker("n9", store, FakeStorage({("a1", "vid", 0): body}), call, TokenBucket(0, 0), repaired.append)
    assert asyncio.run(w.run_once()) == 1
    assert [p for p, _ in calls] == ["/v1/repair/lease", "/v1/repair/commit"]
    assert calls[1][1]["ok"] is True and calls[1][1]["task"] == t.to_dict() and repaired == [1000]
    # a failed copy is committed as failed (the leader plans the blob for another node)
    calls.clear()
    store.put_args = None
    w = RepairWorker("n9", FakeStore(), FakeStorage({}, down={"a1"}), call, TokenBucket(0, 0))

    async def fail_call(path, body_):
        calls.append((path, body_))
        return {"tasks": [t.to_dict()]} if path.endswith("lease") else {"applied": False, "reason": "failed"}

    w.call = fail_call
    asyncio.run(w.run_once())
    assert calls[1][1]["ok"] is False

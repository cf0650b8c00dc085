"""A large ec body's coded batches go to the nodes ``SEND_JOBS`` at a time: each node gets
that many pieces in a row (one burst) rather than one piece per coded batch, and the shard
blobs are what the coding of the whole body gives."""
from __future__ import annotations

import asyncio
import os
from typing import AsyncIterator

from gateway.datapath import erasure_write
from gateway.datapath.erasure_write import SEND_JOBS, write_shards
from gateway.datapath.offload import BATCH
from gateway.topology import Topology
from objstore.erasure import encode_stream
from objstore.erasure.data_layout import DataLayout
from objstore.ring import build_ring
from objstore.types import ClusterMap, NodeInfo, Policy

MIB = 1024 * 1024
NODES = [NodeInfo(f"s{i}", f"127.0.0.1:{7000 + i}") for i in range(1, 7)]


class Storage:
    """Nodes that store every shard blob, noting for each piece how many body chunks the
    gateway had been handed when the piece reached the node."""

    def __init__(self, handed: list[int]) -> None:
        self.handed = handed
        self.arrivals: dict[int, list[int]] = {}
        self.blobs: dict[int, bytes] = {}

    async def put_blob(self, address: str, version_id: str, shard: int, bucket: str, key: str, policy: str,
                       size: int, body: AsyncIterator[bytes] | bytes) -> dict:
        assert not isinstance(body, bytes)
        got = bytearray()
        async for piece in body:
            self.arrivals.setdefault(shard, []).append(self.handed[0])
            got += piece
        assert len(got) == size
        self.blobs[shard] = bytes(got)
        return {"size": size}

    async def delete_blob(self, address: str, version_id: str, shard: int) -> None:
        raise AssertionError("nothing is to be deleted")


def _topology() -> Topology:
    topo = Topology(lambda: None)  # type: ignore[arg-type, return-value]
    topo.map = ClusterMap(1, tuple(NODES))
    topo.ring = build_ring(topo.map)
    return topo


def _runs(values: list[int]) -> list[int]:
    """Lengths of the runs of equal consecutive values."""
    out: list[int] = []
    for i, v in enumerate(values):
        if i and v == values[i - 1]:
            out[-1] += 1
        else:
            out.append(1)
    return out


def _write(size: int) -> tuple[Storage, bytes, DataLayout, tuple[str, ...]]:
    """Write a random ``size``-byte body as ec:4+2 with one stripe per coding job, handed
    over 1 MiB at a time with a loop iteration between pieces (the uploads take what was
    queued for them meanwhile): the storage that got it, the body, the layout, the placement."""
    layout = DataLayout.for_policy(Policy.parse("ec:4+2"), BATCH)  # one stripe per coding job
    body = os.urandom(size)
    handed = [0]

    async def chunks() -> AsyncIterator[bytes]:
        for off in range(0, size, MIB):
            handed[0] += 1
            yield body[off:off + MIB]
            await asyncio.sleep(0)

    storage = Storage(handed)
    placement = asyncio.run(write_shards(storage, _topology(), NODES, layout=layout,  # type: ignore[arg-type]
                                         version_id="v1", bucket="b", key="k", size=size, chunks=chunks()))
    return storage, body, layout, placement


def test_coded_batches_reach_each_node_send_jobs_at_a_time():
    assert SEND_JOBS >= 2
    storage, body, layout, placement = _write(7 * BATCH + MIB // 2)
    assert placement == tuple(n.node_id for n in NODES)
    want = list(encode_stream(layout.stripes, [body]))
    for i in range(6):
        assert storage.blobs[i] == b"".join(bytes(stripe[i]) for stripe in want)
        runs = _runs(storage.arrivals[i])
        # Every burst but the last (the body's end flushes what is left) is SEND_JOBS pieces.
        assert runs[:-1] == [SEND_JOBS] * (len(runs) - 1), (i, storage.arrivals[i])
        assert 1 <= runs[-1] <= SEND_JOBS + 1


def test_one_job_at_a_time_would_send_a_piece_per_batch(monkeypatch):
    """The check above tells the two apart: with SEND_JOBS = 1 every piece is a burst of its own."""
    monkeypatch.setattr(erasure_write, "SEND_JOBS", 1)
    storage, _, _, _ = _write(4 * BATCH)
    assert _runs(storage.arrivals[0])[:-1] == [1] * (len(_runs(storage.arrivals[0])) - 1)

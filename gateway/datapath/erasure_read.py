"""Reading a byte range of an erasure-coded blob (``ec:K+M``) from its shard blobs.

A healthy read fetches only the data shards' bytes the range needs (``read_plan``), one
streaming GET per data shard (its spans over consecutive stripes are one contiguous run of
its blob), and yields the range stripe by stripe, in order, decoding nothing: each span as
it was received (a view of the shard stream's chunk where it lies inside one), not joined
into a stripe first. When a shard
is unavailable (no node recorded for it, node down, suspected or silent for the read-stall
bound while another shard is left to use, blob missing, a block failing its checksum
before or during the stream) the read switches, from the first byte
not yet yielded, to a degraded read: the ``window`` columns of any K available shards per
stripe (data shards preferred), decoded. A shard failing during a degraded read is
replaced by another in the same way. With fewer than K usable shards the read raises
NotEnoughShards (503); the bytes already yielded were right, and no byte is ever guessed.

Memory: one stripe's pieces (at most K x shard width) plus the open streams' buffers.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import AsyncIterator, Callable, Sequence

from objstore.erasure import NotEnoughShards, StripeRead, assemble_stripe
from objstore.erasure.data_layout import DataLayout
from objstore.errors import CorruptBlob, NoSuchKey, ServiceUnavailable
from objstore.node.client import StorageClient

from gateway.topology import Topology

log = logging.getLogger(__name__)

Damaged = Callable[[str, int, str], None]  # (node id, shard, "missing" | "corrupt")


class _ShardFailed(Exception):
    def __init__(self, shard: int, cause: BaseException) -> None:
        super().__init__(f"shard {shard}: {cause}")
        self.shard = shard
        self.cause = cause


class _ShardStream:
    """An open GET of one shard blob's bytes, read in exact lengths.

    Received chunks are kept as they are; ``read`` returns a view of one chunk when the
    length lies inside it (no copy) and joins views otherwise (one copy)."""

    def __init__(self, shard: int, chunks: AsyncIterator[bytes]) -> None:
        self.shard = shard
        self._chunks = chunks
        self._held: collections.deque[memoryview] = collections.deque()
        self._size = 0

    async def read(self, n: int) -> bytes | memoryview:
        try:
            while self._size < n:
                chunk = await self._chunks.__anext__()
                if chunk:
                    self._held.append(memoryview(chunk))
                    self._size += len(chunk)
        except StopAsyncIteration:
            raise _ShardFailed(self.shard, ServiceUnavailable("shard stream ended early")) from None
        except Exception as exc:  # noqa: BLE001 - any failure means: use another shard
            raise _ShardFailed(self.shard, exc) from None
        self._size -= n
        head = self._held[0]
        if len(head) >= n:
            out = head[:n]
            if len(head) == n:
                self._held.popleft()
            else:
                self._held[0] = head[n:]
            return out
        parts = []
        while n:
            head = self._held[0]
            if len(head) <= n:
                parts.append(self._held.popleft())
                n -= len(head)
            else:
                parts.append(head[:n])
                self._held[0] = head[n:]
                n = 0
        return b"".join(parts)


async def read_shards(
    storage: StorageClient,
    topology: Topology,
    version_id: str,
    placement: Sequence[str],
    layout: DataLayout,
    size: int,
    start: int,
    end: int,
    what: str = "",
    damaged: Damaged | None = None,
) -> AsyncIterator[bytes | memoryview]:
    """Yield bytes ``start..end`` (inclusive, as bytes or views of them) of an erasure-coded blob of ``size`` bytes
    whose shard i is on node ``placement[i]`` ("" when none holds it);
    ``damaged(node id, shard, reason)`` is told of a shard missing or corrupt on its node."""
    if end < start:
        return
    stripes = layout.stripes
    bad: dict[int, str] = {i: "no node holds it" for i in range(stripes.n)
                           if i >= len(placement) or topology.node(placement[i]) is None}
    pos = start
    while pos <= end:
        plan = stripes.read_plan(size, pos, end)
        wanted = _healthy_sources(plan, bad, placement, topology)
        degraded = wanted is None
        if wanted is None:
            wanted = _degraded_sources(plan, stripes.k, bad, placement, topology, what or version_id)
        try:
            spare = stripes.n - len(bad) - len(wanted)  # shards left to turn to if one stalls
            async with contextlib.AsyncExitStack() as stack:
                streams = await _open(stack, storage, topology, version_id, placement, wanted, patient=not spare)
                for read in plan:
                    pieces = await _pieces(streams, read, degraded)
                    if degraded:
                        data = assemble_stripe(stripes, read, pieces)
                        pos += len(data)
                        yield data
                        continue
                    for span in read.spans:  # as received: no join into one stripe buffer
                        piece = pieces[span.shard]
                        pos += len(piece)
                        yield piece
        except _ShardFailed as failed:
            bad[failed.shard] = str(failed.cause)
            node_id = placement[failed.shard]
            if not isinstance(failed.cause, (NoSuchKey, CorruptBlob)):
                topology.suspect(node_id)
            elif damaged is not None:
                damaged(node_id, failed.shard, "missing" if isinstance(failed.cause, NoSuchKey) else "corrupt")
            log.info("read of %s (%s) shard %d from %s failed at byte %d: %s",
                     what, version_id, failed.shard, node_id, pos, failed.cause)


def _healthy_sources(plan: Sequence[StripeRead], bad: dict[int, str], placement: Sequence[str],
                     topology: Topology) -> dict[int, tuple[int, int]] | None:
    """{data shard: its blob bytes [a, b)} when every data shard the plan spans is usable."""
    runs: dict[int, tuple[int, int]] = {}
    for read in plan:
        for s in read.spans:
            if s.shard in bad or topology.is_suspect(placement[s.shard]):
                return None
            begin = runs[s.shard][0] if s.shard in runs else read.offset + s.start
            runs[s.shard] = (begin, read.offset + s.end)
    return runs


def _degraded_sources(plan: Sequence[StripeRead], k: int, bad: dict[int, str], placement: Sequence[str],
                      topology: Topology, what: str) -> dict[int, tuple[int, int]]:
    """{shard: its blob bytes [a, b)} for K usable shards (data shards and healthy nodes first)
    covering the plan's windows; NotEnoughShards when fewer than K are usable."""
    usable = sorted((i for i in range(len(placement)) if i not in bad),
                    key=lambda i: (topology.is_suspect(placement[i]), i >= k, i))
    if len(usable) < k:
        raise NotEnoughShards(
            f"{what}: only {len(usable)} of the {k} shards needed are readable; "
            + "; ".join(f"shard {i}: {why}" for i, why in sorted(bad.items()))
        )
    first, last = plan[0], plan[-1]
    run = (first.offset + first.window[0], last.offset + last.window[1])
    return {i: run for i in sorted(usable[:k])}


async def _open(stack: contextlib.AsyncExitStack, storage: StorageClient, topology: Topology, version_id: str,
                placement: Sequence[str], runs: dict[int, tuple[int, int]], *,
                patient: bool = False) -> dict[int, _ShardStream]:
    """Open one GET per shard of ``runs``, all at once; _ShardFailed for the first that fails.

    Without ``patient`` a shard whose node sends nothing for the storage client's
    read-stall bound fails like a dead one (``patient``: no other shard is left)."""
    async def one(i: int) -> _ShardStream:
        node = topology.node(placement[i])
        assert node is not None
        a, b = runs[i]
        try:
            blob = await stack.enter_async_context(storage.get_blob(node.address, version_id, i, a, b - 1,
                                                                    patient=patient))
        except Exception as exc:  # noqa: BLE001
            raise _ShardFailed(i, exc) from None
        return _ShardStream(i, blob.iter_chunks())

    opened = await asyncio.gather(*(one(i) for i in runs), return_exceptions=True)
    _raise_first(opened)
    return {s.shard: s for s in opened}  # type: ignore[union-attr]


async def _pieces(streams: dict[int, _ShardStream], read: StripeRead,
                  degraded: bool) -> dict[int, bytes | memoryview]:
    """This stripe's spans (healthy) or window columns of every open shard (degraded)."""
    if degraded:
        lo, hi = read.window
        wants = {i: hi - lo for i in streams}
    else:
        wants = {s.shard: s.length for s in read.spans}
    got = await asyncio.gather(*(streams[i].read(n) for i, n in wants.items()), return_exceptions=True)
    _raise_first(got)
    if degraded:  # decoded by zfec, which takes bytes
        got = [bytes(g) for g in got]  # type: ignore[arg-type]
    return dict(zip(wants, got))  # type: ignore[arg-type]


def _raise_first(results: Sequence[object]) -> None:
    for r in results:
        if isinstance(r, _ShardFailed):
            raise r
    for r in results:
        if isinstance(r, BaseException):
            raise r

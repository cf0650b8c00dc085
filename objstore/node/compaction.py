"""Segment compaction: sealed segments whose live fraction fell below a threshold are
rewritten so the space of their dead records (replaced, deleted, collected) returns.

One segment S (sealed: never the active one) is compacted in four steps, each durable
before the next starts:

1. **scan** S's records (headers and footers) and keep what must survive: each record that
   is the live index entry of its blob id, and each tombstone that is the newest record
   of its id and still *needed* (:meth:`BlobIndex.tombstone_needed`: a dead blob record of
   that id remains in another file of this node);
2. **copy** those records, every block verified first, through the group committer into the
   active segment *with their original seq*: byte-identical records. A batch is fdatasynced
   before its copies are installed, and a copy is installed only if its id still has that
   seq (:meth:`BlobIndex.relocate`); a newer write or delete meanwhile wins, the copy is dead;
3. **check** that nothing live (an entry or a needed tombstone) is still located in S;
4. **unlink** S and fsync the directory, then forget S in the index (its dead records, and
   the tombstones not copied, which are thereby dropped).

Crash safety (the index is rebuilt from the files alone, highest seq wins per id):
- before step 2 ends, S is intact and every copy made so far is identical to its original
  (same seq, same bytes): whichever of the two the rebuild keeps, the blob reads the same;
  a torn copy batch is the active segment's torn tail, cut at start-up;
- between steps 3 and 4, both S and the copies exist: as above;
- after step 4, S is gone, and every live record of S had a durable copy; a tombstone
  dropped had no older blob record of its id left in any other file, so nothing it
  suppressed can come back. A copy of a record that died meanwhile has its original seq,
  below the tombstone or newer record that killed it, so it stays dead on every rebuild.

A segment whose records do not all verify is left alone (scrub's business) and a copy
that fails (no space) abandons the round; both leave S in place, which is always safe.

Cross-node delete manifests do not exist yet: a node-level tombstone only guards this
node's own older records; a copy on a node that missed a delete is an orphan for
garbage collection (:mod:`objstore.node.gc`).

Throttled to ``rate`` bytes copied per second; one compaction at a time per node.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from objstore.checksum import unpack_u64
from objstore.node.blob import FOOTER_SIZE, KIND_BLOB
from objstore.node.segments import PendingRecord, ScannedRecord, read_verified_body, scan_segment, segment_name
from objstore.node.store import BlobStore

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
DEFAULT_RATE = 64_000_000  # bytes copied per second (`--compaction-rate` 64 MB/s)
COPY_BATCH_BYTES = 4 * 1024 * 1024


class CrashPoint(Exception):
    """Raised by a test's crash hook to stop compaction at a named step."""


@dataclass(frozen=True, slots=True)
class Candidate:
    number: int
    size: int
    live: int

    @property
    def live_fraction(self) -> float:
        return self.live / self.size if self.size else 0.0


@dataclass(slots=True)
class CompactionStats:
    segments_compacted: int = 0
    reclaimed_bytes: int = 0
    copied_bytes: int = 0
    tombstones_dropped: int = 0
    segments_skipped: int = 0


class Compactor:
    """Compacts one store's sealed segments (see the module docstring for the steps)."""

    def __init__(
        self,
        store: BlobStore,
        threshold: float = DEFAULT_THRESHOLD,
        rate: float = DEFAULT_RATE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        crash: Callable[[str], None] = lambda step: None,
    ) -> None:
        self.store = store
        self.threshold = threshold
        self.rate = rate
        self._clock, self._sleep, self._crash = clock, sleep, crash
        self.stats = CompactionStats()
        self._lock = asyncio.Lock()

    def candidates(self) -> list[Candidate]:
        """Sealed segments below the live threshold, sparsest first."""
        segs, index = self.store.segments, self.store.index
        out = []
        for number in segs.numbers[:-1]:
            rel = segment_name(number)
            try:
                size = segs.segment_size(number)
            except FileNotFoundError:
                continue
            live = index.live_by_file.get(rel, 0)
            for bid in index.tombstones_in(rel):
                tomb = index.tombstone(bid)
                if tomb is not None and tomb.location is not None and index.tombstone_needed(bid):
                    live += tomb.location.length
            if size == 0 or live / size < self.threshold:
                out.append(Candidate(number, size, live))
        return sorted(out, key=lambda c: c.live_fraction)

    async def compact_once(self, limit: int = 0) -> int:
        """Compact every current candidate (at most ``limit`` if given); returns bytes reclaimed."""
        reclaimed = 0
        async with self._lock:
            cands = self.candidates()
            for cand in cands[:limit] if limit else cands:
                reclaimed += await self._compact(cand.number)
        return reclaimed

    async def compact_segment(self, number: int) -> int:
        """Compact one sealed segment now (whatever its live fraction); returns bytes reclaimed."""
        async with self._lock:
            return await self._compact(number)

    async def run(self, interval: float) -> None:
        """Check every ``interval`` seconds until cancelled."""
        while True:
            await self._sleep(interval)
            try:
                n = await self.compact_once()
                if n:
                    log.info("compaction reclaimed %d bytes", n)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next round retries; the segment stays
                log.exception("compaction round failed")

    # --- one segment --------------------------------------------------------------------

    def _keep(self, rec: ScannedRecord) -> bool:
        index = self.store.index
        bid = rec.header.blob_id
        if rec.header.kind == KIND_BLOB:
            entry = index.get(bid)
            return entry is not None and entry.location == rec.location
        tomb = index.tombstone(bid)
        return tomb is not None and tomb.location == rec.location and index.tombstone_needed(bid)

    def _still_live_in(self, rel: str) -> bool:
        index = self.store.index
        if index.live_by_file.get(rel, 0):
            return True
        return any(index.tombstone_needed(bid) for bid in index.tombstones_in(rel))

    async def _compact(self, number: int) -> int:
        store, segs = self.store, self.store.segments
        if number == segs.active_number or number not in segs.numbers:
            return 0
        rel = segment_name(number)
        path = os.path.join(store.data_dir, rel)
        scan = await store.run_io(scan_segment, path, rel, False)
        if scan.damaged or scan.valid_end != scan.file_size:
            log.error("segment %s has damaged stretches: not compacted", rel)
            self.stats.segments_skipped += 1
            return 0
        self._crash("scanned")
        keep = [r for r in scan.records if self._keep(r)]
        copied = await self._copy(rel, keep)
        if copied < 0:
            self.stats.segments_skipped += 1
            return 0
        if self._still_live_in(rel):
            log.warning("segment %s still holds live records after copying: left for the next round", rel)
            self.stats.segments_skipped += 1
            return 0
        self._crash("before-unlink")
        size = await store.run_serial(segs.remove, number)
        self._crash("unlinked")
        dropped = store.index.forget_file(rel, {r.header.blob_id for r in scan.records})
        reclaimed = max(size - copied, 0)
        st = self.stats
        st.segments_compacted += 1
        st.reclaimed_bytes += reclaimed
        st.copied_bytes += copied
        st.tombstones_dropped += dropped
        log.info("compacted %s: %d bytes, %d copied, %d tombstones dropped", rel, size, copied, dropped)
        return reclaimed

    async def _copy(self, rel: str, keep: list[ScannedRecord]) -> int:
        """Copy ``keep`` in verified, throttled batches; bytes copied, or -1 if abandoned."""
        store = self.store
        readers = store.segments.readers
        fd = await store.run_io(readers.acquire, rel)
        started, copied = self._clock(), 0
        try:
            i = 0
            while i < len(keep):
                batch, size = [], 0
                while i < len(keep) and (not batch or size + keep[i].location.length <= COPY_BATCH_BYTES):
                    batch.append(keep[i])
                    size += keep[i].location.length
                    i += 1
                bodies = await store.run_io(_read_batch, fd, batch)
                if bodies is None:
                    log.error("segment %s: a live record does not verify: not compacted", rel)
                    return -1
                try:
                    await asyncio.gather(*(store.append_copy(_copy_of(r, body)) for r, body in zip(batch, bodies)))
                except OSError as exc:
                    log.error("segment %s: copying failed (%s): not compacted", rel, exc)
                    return -1
                copied += size
                self._crash("copied")
                await self._throttle(started, copied)
        finally:
            readers.release(rel, fd)
        return copied

    async def _throttle(self, started: float, copied: int) -> None:
        if self.rate > 0:
            wait = started + copied / self.rate - self._clock()
            if wait > 0:
                await self._sleep(wait)


def _read_batch(fd: int, batch: list[ScannedRecord]) -> list[bytes] | None:
    out = []
    for rec in batch:
        body = read_verified_body(fd, rec)
        if body is None:
            return None
        out.append(body)
    return out


def _copy_of(rec: ScannedRecord, body: bytes) -> PendingRecord:
    hlen = rec.location.header_len
    assert len(body) == rec.location.length - FOOTER_SIZE
    return PendingRecord(rec.header, body, hlen, rec.header.size, rec.footer.data_xxh,
                         unpack_u64(body, hlen - 8), seq=rec.footer.seq)

"""The scrubber: every storage node re-reads all its committed blobs, slowly and forever.

A pass walks the blob records live in the index when it starts (segment records and blob
files, in file and offset order, so the disk reads sequentially) and verifies each
record's header against the index, every block's xxh64, the footer (same seq, size and
header checksum) and the whole-data checksum. A record found corrupt is quarantined
(:meth:`objstore.node.store.BlobStore.quarantine`: never served again) and reported for
repair (:mod:`objstore.node.repair_report`). Reads that find a corrupt block take the same
path (:meth:`Scrubber.found_corrupt`).

Verification itself: :mod:`objstore.node.record_check`. Pacing: reads are charged to a
token bucket (:class:`objstore.pacing.TokenBucket`) of ``rate`` bytes/s (``--scrub-rate`` MB/s,
10^6 bytes) holding at most ``burst`` bytes; the clock and the sleep are injected, so
tests run in milliseconds. Passes start at most every ``interval`` seconds
(``--scrub-interval``, measured start to start, default one day): a node whose pass takes
longer than the interval scrubs back to back; a small node rests between passes instead of
re-reading its disk every hour. ``start_pass`` starts one now.

Invariants:
- The event loop is never blocked for long: file reads and checksums run on a thread of
  the scrubber's own (so scrubbing never takes a foreground read's IO thread), about
  1 MiB per call (a large record in chunks, small segment records batched:
  :func:`~objstore.node.record_check.batches`), and the loop awaits between calls.
- A read error EIO counts as damage (the record is quarantined like a corrupt one); other
  read errors are counted and logged, and the record is tried again next pass.
- Only the record that was read is quarantined, and only while it is still the live
  record of its blob id (a record replaced or deleted meanwhile is skipped), so a rewrite
  racing the scrubber is never quarantined by mistake.
- ``last_full_pass`` (when the last complete pass ended) and the pass count are persisted
  in ``scrub.json`` (:func:`objstore.durable_io.atomic_write`), so a restart neither
  forgets the last pass nor starts a new one early. A running pass saves where it is
  (:func:`~objstore.node.record_check.order_key` of the last record verified) every ``checkpoint`` seconds; after a
  restart it resumes from there at once, so a node that restarts more often than a pass
  takes still completes passes (records written meanwhile before the cursor wait for the
  next pass).
"""
from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import errno
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

from objstore.checksum import StreamHasher
from objstore.durable_io import atomic_write
from objstore.errors import CorruptBlob
from objstore.node.index import Entry
from objstore.node.record_check import CHUNK, batches, check_record, check_records, chunk_bytes, order_key, plan_pass
from objstore.node.repair_report import ReportQueue, damage_report
from objstore.node.store import BlobStore
from objstore.pacing import Sleep, TokenBucket

log = logging.getLogger(__name__)

MB = 1_000_000
STATE_FILE = "scrub.json"
STATE_FORMAT = 1
DEFAULT_RATE_MB = 20.0
DEFAULT_INTERVAL = 86400.0


@dataclass(slots=True)
class PassProgress:
    """One pass: what it covers and how far it got."""

    pass_id: int
    started: float  # unix seconds
    bytes_total: int
    blobs_total: int
    bytes_done: int = 0
    blobs_done: int = 0
    corrupt: int = 0
    ended: float = 0.0

    def to_dict(self, now: float) -> dict:
        return {"id": self.pass_id, "started": self.started, "elapsed": (self.ended or now) - self.started,
                "bytes_done": self.bytes_done, "bytes_total": self.bytes_total, "blobs_done": self.blobs_done,
                "blobs_total": self.blobs_total, "progress": progress_ratio(self.bytes_done, self.bytes_total),
                "corrupt": self.corrupt}


def progress_ratio(done: int, total: int) -> float:
    return min(1.0, done / total) if total else 1.0


class Scrubber:
    """The scrubber of one node's store (see the module docstring).

    ``clock`` is wall time (pass times, schedule), ``monotonic`` and ``sleep`` pace reads.
    ``reports`` receives a damage report per corrupt record (None: not reported).
    """

    def __init__(self, store: BlobStore, node_id: str, rate: float = DEFAULT_RATE_MB * MB,
                 interval: float = DEFAULT_INTERVAL, reports: ReportQueue | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Sleep = asyncio.sleep, burst: float = 4 * CHUNK, checkpoint: float = 60.0) -> None:
        self.store = store
        self.node_id = node_id
        self.interval = interval
        self.reports = reports
        self._clock, self._sleep = clock, sleep
        self.bucket = TokenBucket(rate, burst, monotonic, sleep)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self.current: PassProgress | None = None
        self.last: PassProgress | None = None  # the last pass that ended in this process
        self.passes_completed = 0
        self.last_full_pass = 0.0  # when the last complete pass ended (unix seconds; 0 never)
        self.last_full_pass_started = 0.0
        self.bytes_verified = 0  # since the process started
        self.checkpoint = checkpoint
        self.resume: dict | None = None  # where an interrupted pass stopped (see load_state)
        self.read_errors = 0

    # --- life cycle ---------------------------------------------------------------------

    def _state_path(self) -> str:
        return os.path.join(self.store.data_dir, STATE_FILE)

    def load_state(self) -> None:
        """Read ``scrub.json`` (synchronous); an unreadable one is logged and ignored."""
        try:
            with open(self._state_path(), "rb") as f:
                d = json.loads(f.read())
            if d.get("format") != STATE_FORMAT:
                raise ValueError(f"unknown format {d.get('format')!r}")
            self.passes_completed = int(d["passes_completed"])
            self.last_full_pass = float(d["last_full_pass"])
            self.last_full_pass_started = float(d["last_full_pass_started"])
            r = d.get("resume")
            if r is not None and int(r["id"]) == self.passes_completed + 1:
                self.resume = {"id": int(r["id"]), "started": float(r["started"]), "key": list(r["key"]),
                               "bytes_done": int(r["bytes_done"]), "blobs_done": int(r["blobs_done"])}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("scrub state %s unreadable, starting afresh: %s", self._state_path(), exc)

    def _save_state(self, resume: dict | None = None) -> None:
        atomic_write(self._state_path(), json.dumps({
            "format": STATE_FORMAT, "passes_completed": self.passes_completed,
            "last_full_pass": self.last_full_pass, "last_full_pass_started": self.last_full_pass_started,
            "resume": resume,
        }).encode())

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="scrub")
        return self._pool

    async def start(self) -> None:
        """Load the persisted state and start scrubbing in the background."""
        await asyncio.get_running_loop().run_in_executor(self._executor(), self.load_state)
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # --- scheduling ---------------------------------------------------------------------

    def next_pass_at(self) -> float:
        """When the next pass is due (unix seconds): ``interval`` after the last complete
        pass started; at once if there was none or one was interrupted."""
        if self.resume is not None or not self.passes_completed:
            return 0.0
        return self.last_full_pass_started + self.interval

    def start_pass(self) -> int:
        """Start a pass now (or keep the one running); returns the id of the pass to wait for."""
        if self.current is not None:
            return self.current.pass_id
        self._wake.set()
        return self.passes_completed + 1

    async def _loop(self) -> None:
        while True:
            wait = self.next_pass_at() - self._clock()
            if wait > 0 and not self._wake.is_set():
                sleeper = asyncio.ensure_future(self._sleep(wait))
                waker = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
                    waker.cancel()
                continue
            self._wake.clear()
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed pass is logged; the next one is tried later
                log.exception("scrub pass failed")
                await self._sleep(60.0)

    # --- one pass -----------------------------------------------------------------------

    async def run_pass(self) -> PassProgress:
        """Verify every record live now; returns the pass's progress when it has ended."""
        entries, total = await plan_pass(self.store.index.entries())
        p = PassProgress(self.passes_completed + 1, self._clock(), total, len(entries))
        first = 0
        r, self.resume = self.resume, None
        if r is not None and r["id"] == p.pass_id:
            first = bisect.bisect_right(entries, tuple(r["key"]), key=order_key)
            p.started = r["started"]
            p.blobs_done, p.bytes_done = min(first, r["blobs_done"]), min(total, r["bytes_done"])
            log.info("scrub pass %d resumes after %s", p.pass_id, r["key"][1:])
        self.current = p
        log.info("scrub pass %d: %d blobs, %d bytes", p.pass_id, p.blobs_total, p.bytes_total)
        saved = self._clock()
        loop = asyncio.get_running_loop()
        try:
            for batch in batches(entries[first:] if first else entries):
                base = p.bytes_done
                live = [e for e in batch if self.store.index.get(e.blob_id) is e]  # else replaced, deleted, quarantined
                if len(batch) == 1 and live:
                    await self._scrub_entry(live[0], p)
                elif live:
                    await self._scrub_small(live, p)
                p.blobs_done += len(batch)
                p.bytes_done = base + sum(e.location.length for e in batch)
                if self._clock() - saved >= self.checkpoint:
                    saved = self._clock()
                    cursor = {"id": p.pass_id, "started": p.started, "key": list(order_key(batch[-1])),
                              "bytes_done": p.bytes_done, "blobs_done": p.blobs_done}
                    await loop.run_in_executor(self._executor(), self._save_state, cursor)
        finally:
            self.current = None
        p.ended = self._clock()
        self.passes_completed = p.pass_id
        self.last_full_pass, self.last_full_pass_started = p.ended, p.started
        self.last = p
        await loop.run_in_executor(self._executor(), self._save_state)
        log.info("scrub pass %d done in %.1f s: %d blobs, %d bytes, %d corrupt", p.pass_id, p.ended - p.started,
                 p.blobs_total, p.bytes_total, p.corrupt)
        return p

    async def _scrub_small(self, entries: list[Entry], p: PassProgress) -> None:
        """Verify small segment records in one call on the scrub thread (one thread hop per
        ~1 MiB, not one per record)."""
        n = sum(e.location.length for e in entries)
        await self.bucket.take(n)
        failed = await asyncio.get_running_loop().run_in_executor(self._executor(), check_records, self.store,
                                                                  entries)
        self.bytes_verified += n
        for entry, reason, kind in failed:
            if kind == "error":
                self.read_errors += 1
                log.error("scrub of %s/%d: read failed: %s", entry.blob_id.version_id, entry.blob_id.shard, reason)
            elif self.store.index.get(entry.blob_id) is entry:
                p.corrupt += await self.found_corrupt(entry, reason, kind)

    async def _scrub_entry(self, entry: Entry, p: PassProgress) -> None:
        loop = asyncio.get_running_loop()
        pool = self._executor()
        try:
            fd, release = await loop.run_in_executor(pool, self.store.record_fd, entry)
        except FileNotFoundError:
            if self.store.index.get(entry.blob_id) is entry:
                p.corrupt += await self.found_corrupt(entry, "blob file missing", "missing")
            return
        try:
            h = entry.header
            group = max(1, CHUNK // h.block_size)
            hasher = StreamHasher()
            first = 0
            while True:
                last = min(h.n_blocks - 1, first + group - 1)
                n = chunk_bytes(entry, first, last)
                await self.bucket.take(n)
                await loop.run_in_executor(pool, check_record, fd, entry, first, last, hasher)
                self.bytes_verified += n
                p.bytes_done += n
                first = last + 1
                if first >= h.n_blocks:
                    return
        except CorruptBlob as exc:
            if self.store.index.get(entry.blob_id) is entry:
                p.corrupt += await self.found_corrupt(entry, str(exc))
        except OSError as exc:
            if exc.errno == errno.EIO and self.store.index.get(entry.blob_id) is entry:
                p.corrupt += await self.found_corrupt(entry, f"read error: {exc}")
            else:
                self.read_errors += 1
                log.error("scrub of %s/%d: read failed: %s", entry.blob_id.version_id, entry.blob_id.shard, exc)
        finally:
            await loop.run_in_executor(pool, release)

    async def found_corrupt(self, entry: Entry, reason: str, kind: str = "corrupt") -> int:
        """Quarantine ``entry`` (found damaged by a pass or a read) and report it for repair.
        Returns 1 if it was quarantined now, 0 if it was no longer the live record."""
        bid = entry.blob_id
        if not await self.store.quarantine(entry, reason):
            return 0
        log.error("blob %s/%d (%s/%s) quarantined: %s", bid.version_id, bid.shard, entry.header.bucket,
                  entry.header.key, reason)
        if self.reports is not None:
            self.reports.add(damage_report(entry.header, self.node_id, kind))
        return 1

    # --- status -------------------------------------------------------------------------

    def status(self) -> dict:
        """The scrubber's state as JSON (``GET /v1/scrub``, the heartbeat's ``scrub``)."""
        now = self._clock()
        q = self.store.quarantined
        return {
            "node_id": self.node_id,
            "state": "scrubbing" if self.current is not None else "waiting",
            "rate_bytes_per_s": self.bucket.rate,
            "interval_seconds": self.interval,
            "pass": self.current.to_dict(now) if self.current is not None else None,
            "last_pass": self.last.to_dict(now) if self.last is not None else None,
            "passes_completed": self.passes_completed,
            "last_full_pass": self.last_full_pass or None,
            "next_pass_at": self.next_pass_at() if self.current is None else None,
            "bytes_verified": self.bytes_verified,
            "read_errors": self.read_errors,
            "corrupt_found": q.corrupt_total,
            "repaired": q.repaired_total,
            "quarantined": len(q),
            "reports": self.reports.status() if self.reports is not None else None,
        }


class ScrubCollector:
    """Prometheus metrics of a scrubber, read from :meth:`Scrubber.status` at scrape time."""

    def __init__(self, status: Callable[[], dict | None], node_id: str) -> None:
        self._status, self._node = status, node_id

    def collect(self):  # noqa: ANN201 - prometheus collector protocol
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self._status() or {}
        current = s.get("pass") or {}
        families = [
            (CounterMetricFamily, "objstore_scrub_bytes_verified", "Bytes the scrubber read and verified",
             s.get("bytes_verified", 0)),
            (CounterMetricFamily, "objstore_scrub_corrupt_blobs", "Corrupt blob records found and quarantined",
             s.get("corrupt_found", 0)),
            (CounterMetricFamily, "objstore_scrub_repaired_blobs", "Quarantined blob records replaced by a new copy",
             s.get("repaired", 0)),
            (GaugeMetricFamily, "objstore_scrub_last_full_pass_timestamp_seconds",
             "When the last complete scrub pass ended (unix seconds; 0 never)", s.get("last_full_pass") or 0),
            (GaugeMetricFamily, "objstore_scrub_pass_progress_ratio",
             "Share of the running pass's bytes verified (1 when no pass runs)", current.get("progress", 1.0)),
            (GaugeMetricFamily, "objstore_scrub_quarantined_blobs", "Blob records quarantined now",
             s.get("quarantined", 0)),
        ]
        out = []
        for kind, name, help_text, value in families:
            m = kind(name, help_text, labels=["node"])
            m.add_metric([self._node], value)
            out.append(m)
        return out

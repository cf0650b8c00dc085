"""One benchmark run: set up the bucket, run each phase, watch the cluster, clean up.

Phases run in the order given; small phases once per ``--concurrency`` value for
``--duration`` seconds, large phases once per large concurrency for ``--large-count``
objects. GET phases read what the PUT phases of the same size wrote; if none did, they
first write (untimed) a set of objects to read. All keys live under ``bench-<run id>/``.

Invariants: every key this run tried to write is deleted at the end, whatever happened
(errors, Ctrl-C), and the bucket is deleted if this run created it; a cleanup failure is
reported, not hidden. Progress goes to ``progress`` (stderr), one line per finished
phase, with a progress bar (count, rate, ETA) while a phase runs on a terminal.
"""
from __future__ import annotations

import asyncio
import random
import time
from typing import Callable, TextIO

from ops.bench.loadgen import Payload, PhaseSpec, Recorder, check_get, check_put, drive, record
from ops.bench.monitor import PeerMonitor, ProcessMonitor, cluster_processes, read_cluster_info
from ops.bench.report import progress_line
from ops.bench.results import PhaseResult, RunResult, build_phase_result
from ops.bench.s3client import Outcome, S3Client
from ops.bench.settings import BenchSettings
from gateway.auth.sign import SigV4Signer
from ops.cli.output import ProgressBar, count_unit

SMALL_SEED_COUNT = 256
CLEANUP_CONCURRENCY = 32
DELETE_BATCH = 1000
TICK_S = 0.5
TICK_AFTER_S = 1.0


def plan_phases(s: BenchSettings) -> list[PhaseSpec]:
    """The phases of a run, in order."""
    specs: list[PhaseSpec] = []
    for name in s.phases:
        op = name.split("-", 1)[1]
        if name.startswith("small"):
            specs.extend(PhaseSpec(name, op, s.small_size, c, duration_s=s.duration_s) for c in s.concurrency)
        else:
            specs.extend(PhaseSpec(name, op, s.large_size, c, count=s.large_count) for c in s.large_concurrency)
    return specs


class BenchRun:
    """The state of one run: client, payloads, keys written, results so far."""

    def __init__(self, s: BenchSettings, client: S3Client, monitor: ProcessMonitor | PeerMonitor, progress: TextIO,
                 rng: random.Random, clock: Callable[[], float] = time.perf_counter, *, run_id: str | None = None,
                 payloads: dict[int, Payload] | None = None, tag: str = "") -> None:
        """``run_id`` and ``payloads`` are shared by the two runs of a comparison, so both
        endpoints get the same keys and the same bytes."""
        self.s, self.client, self.monitor, self.progress = s, client, monitor, progress
        self.rng, self.clock, self.tag = rng, clock, tag
        self.run_id = run_id or f"{rng.getrandbits(32):08x}"
        self.bucket = s.bucket or f"bench-{self.run_id}"
        self.prefix = f"bench-{self.run_id}/"
        self.bucket_created = False
        self.attempted: list[str] = []
        self.pools: dict[str, list[str]] = {"small": [], "large": [], "multipart": []}
        self._payloads: dict[int, Payload] = {} if payloads is None else payloads

    def payload(self, size: int) -> Payload:
        if size not in self._payloads:
            self._payloads[size] = Payload(size, self.rng)
        return self._payloads[size]

    def say(self, text: str) -> None:
        self.progress.write(text + "\n")
        self.progress.flush()

    async def setup(self) -> None:
        if self.s.bucket and await self.client.bucket_exists(self.bucket):
            return
        await self.client.create_bucket(self.bucket, self.s.policy)
        self.bucket_created = True

    async def _put_one(self, rec: Recorder, key: str, size: int, verify: bool) -> bool:
        payload = self.payload(size)
        self.attempted.append(key)
        body = payload.whole(key) if size < (1 << 20) else payload.chunks(key)
        t0 = self.clock()
        out = await self.client.put(self.bucket, key, body, size)
        latency = self.clock() - t0
        if out.error is None and verify:
            check = check_put(key, out, payload.md5(key))
            rec.checks.append(check)
            if not check["ok"]:
                rec.failure("ETag differs from the MD5 of the data sent")
                return False
        return record(rec, out, latency)

    async def _multipart_one(self, rec: Recorder, key: str, size: int) -> bool:
        """One multipart upload of ``size`` bytes in ``part_size`` parts, ``part_concurrency``
        parts in flight (as the AWS CLI and rclone send them); its latency is the whole upload's."""
        payload, part = self.payload(size), self.s.part_size
        self.attempted.append(key)
        t0 = self.clock()
        created = await self.client.create_multipart(self.bucket, key)
        if created.error is not None:
            return record(rec, created, 0.0)
        upload_id = created.etag
        bounds = [(off, min(off + part, size)) for off in range(0, size, part)] or [(0, 0)]
        etags: list[str] = [""] * len(bounds)
        failure: list[Outcome] = []
        gate = asyncio.Semaphore(self.s.part_concurrency)

        async def send(n: int) -> None:
            start, end = bounds[n]
            async with gate:
                if failure:
                    return
                out = await self.client.upload_part(self.bucket, key, upload_id, n + 1,
                                                    payload.range_chunks(key, start, end), end - start)
            if out.error is not None:
                failure.append(out)
            etags[n] = out.etag

        await asyncio.gather(*(send(n) for n in range(len(bounds))))
        out = failure[0] if failure else await self.client.complete_multipart(self.bucket, key, upload_id, etags)
        latency = self.clock() - t0
        if out.error is not None:
            await self.client.abort_multipart(self.bucket, key, upload_id)
            return record(rec, out, latency)
        return record(rec, Outcome(out.status, nbytes=size, etag=out.etag), latency)

    async def _get_one(self, rec: Recorder, key: str, size: int, verify: bool) -> None:
        t0 = self.clock()
        out = await self.client.get(self.bucket, key, with_md5=verify)
        latency = self.clock() - t0
        if out.error is None:
            check = check_get(key, out, size, self.payload(size).md5(key) if verify else None)
            if verify:
                rec.checks.append(check)
            if not check["ok"]:
                rec.failure("wrong length" if out.nbytes != size else "MD5 mismatch")
                return
        record(rec, out, latency)

    async def _seed(self, kind: str, size: int, count: int, concurrency: int, rec: Recorder) -> None:
        """Write ``count`` objects (untimed) for a GET phase; failures count as the phase's errors."""
        self.say(f"  writing {count} objects of {size} bytes to read back...")
        seed_rec = Recorder()
        pool = self.pools[kind]

        async def one(i: int) -> None:
            key = f"{self.prefix}{kind}/seed/{i:08d}"
            if await self._put_one(seed_rec, key, size, verify=False):
                pool.append(key)

        await drive(PhaseSpec("seed", "put", size, concurrency, count=count), one, self.clock)
        for k, v in seed_rec.errors.items():
            rec.errors[f"seed PUT {k}"] += v

    async def _tick(self, spec: PhaseSpec, rec: Recorder, start: float) -> None:
        """A progress bar of the running phase (time for a timed phase, objects for a counted
        one), with the rate and ETA, until cancelled."""
        with ProgressBar(self.progress, label=f"  {spec.label:<16}", unit=count_unit, clock=self.clock) as bar:
            while True:
                await asyncio.sleep(TICK_S)
                elapsed = self.clock() - start
                if elapsed < TICK_AFTER_S:
                    continue
                timed = spec.duration_s is not None
                bar.update(rec.ok, None if timed else spec.count, rec.ok / elapsed, extra=f"{rec.failed} errors",
                           fraction=elapsed / spec.duration_s if timed else None,
                           eta=max(spec.duration_s - elapsed, 0.0) if timed else None)

    async def run_phase(self, spec: PhaseSpec) -> PhaseResult:
        rec = Recorder()
        kind = spec.name.split("-", 1)[0]
        pool = self.pools[kind]
        if spec.op == "get" and not pool:
            count = SMALL_SEED_COUNT if kind == "small" else self.s.large_count
            await self._seed(kind, spec.size, count, max(spec.concurrency, 4 if kind == "large" else 32), rec)

        async def small_put(i: int) -> None:
            key = f"{self.prefix}small/c{spec.concurrency}/{i:08d}"
            if await self._put_one(rec, key, spec.size, verify=False):
                pool.append(key)

        async def small_get(i: int) -> None:
            await self._get_one(rec, pool[self.rng.randrange(len(pool))], spec.size, verify=False)

        async def large_put(i: int) -> None:
            key = f"{self.prefix}large/c{spec.concurrency}/{i:04d}"
            if await self._put_one(rec, key, spec.size, verify=(i == 0)):
                pool.append(key)

        async def large_get(i: int) -> None:
            await self._get_one(rec, pool[i % len(pool)], spec.size, verify=(i == 0))

        async def multipart_put(i: int) -> None:
            key = f"{self.prefix}multipart/c{spec.concurrency}/{i:04d}"
            if await self._multipart_one(rec, key, spec.size):
                pool.append(key)

        do_one = {"small-put": small_put, "small-get": small_get, "large-put": large_put,
                  "large-get": large_get, "multipart-put": multipart_put}[spec.name]
        elapsed = 0.0
        usage = None
        if spec.op == "put" or pool:
            self.monitor.begin()
            ticker = None
            if self.progress.isatty():
                ticker = asyncio.create_task(self._tick(spec, rec, self.clock()))
            try:
                elapsed = await drive(spec, do_one, self.clock)
            finally:
                if ticker is not None:
                    ticker.cancel()
                    await asyncio.gather(ticker, return_exceptions=True)
                usage = await self.monitor.end()
        result = build_phase_result(spec, rec.latencies, rec.ok, rec.nbytes, rec.errors, elapsed, usage, rec.checks)
        self.say(self.tag + progress_line(result))
        return result

    async def cleanup(self) -> dict[str, object]:
        """Delete every key this run tried to write, then the bucket if this run created it."""
        keys = list(dict.fromkeys(self.attempted))
        report: dict[str, object] = {}
        if keys:
            self.say(f"  cleaning up: deleting {len(keys)} objects...")
        failed = await self._delete_keys(keys)
        report["objects_deleted"] = len(keys) - failed
        if failed:
            report["objects_not_deleted"] = failed
        if self.bucket_created:
            try:
                leftovers = await self.client.list_keys(self.bucket)
                if leftovers:
                    failed += await self._delete_keys(leftovers)
                await self.client.delete_bucket(self.bucket)
                report["bucket_deleted"] = self.bucket
            except Exception as exc:  # reported to the user, never raised past the results
                report["bucket_not_deleted"] = f"{self.bucket}: {exc}"
        return report

    async def _delete_keys(self, keys: list[str]) -> int:
        """Delete ``keys`` (in batches of 1000 where the endpoint can); how many were not deleted."""
        failed = 0
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start: start + DELETE_BATCH]
            batch_failed = await self.client.delete_many(self.bucket, batch)
            if batch_failed is None:  # no multi-delete here: one request per key from now on
                return failed + await self._delete_one_by_one(keys[start:])
            failed += batch_failed
        return failed

    async def _delete_one_by_one(self, keys: list[str]) -> int:
        failed = 0

        async def one(i: int) -> None:
            nonlocal failed
            out = await self.client.delete(self.bucket, keys[i])
            if out.error is not None:
                failed += 1

        if keys:
            await drive(PhaseSpec("cleanup", "delete", 0, CLEANUP_CONCURRENCY, count=len(keys)), one, self.clock)
        return failed


def cluster_monitor(s: BenchSettings) -> ProcessMonitor:
    """A monitor of the objstore cluster whose data dir is ``s.data_dir`` (if it serves ``s.endpoint``)."""
    processes, why = cluster_processes(read_cluster_info(s.data_dir), s.endpoint)
    return ProcessMonitor(processes, s.endpoint, unavailable=why)


def open_client(s: BenchSettings) -> S3Client:
    """An S3 client for ``s.endpoint`` with enough connections for every phase (use with ``async with``)."""
    per_upload = s.part_concurrency if "multipart-put" in s.phases else 1
    connections = max((*s.concurrency, *(c * per_upload for c in s.large_concurrency), CLEANUP_CONCURRENCY)) + 2
    return S3Client(s.endpoint, SigV4Signer(s.access_key, s.secret_key, s.region), connections=connections)


def disk_limit_notes(s: BenchSettings, results: list[PhaseResult]) -> list[str]:
    """For each large PUT phase, its MB/s as a share of the disk's limit for ``s.disk_copies`` copies."""
    if s.disk_limit_mb_s is None:
        return []
    ceiling = s.disk_limit_mb_s / s.disk_copies
    return [f"{r.label}: {r.mb_per_s:.1f} MB/s is {r.mb_per_s / ceiling * 100:.0f}% of the disk's limit for "
            f"{s.disk_copies} copies ({s.disk_limit_mb_s:.0f} MB/s / {s.disk_copies} = {ceiling:.1f} MB/s)"
            for r in results if r.op == "put" and r.object_size >= 1 << 20 and r.mb_per_s is not None]


async def run_benchmark(s: BenchSettings, progress: TextIO, rng: random.Random | None = None) -> RunResult:
    """Run every phase against ``s.endpoint`` and clean up; raises BenchError if setup fails."""
    rng = rng or random.Random()
    monitor = cluster_monitor(s)
    async with open_client(s) as client:
        run = BenchRun(s, client, monitor, progress, rng)
        await run.setup()
        run.say(f"objstore bench: {s.endpoint}, bucket {run.bucket}"
                f"{' (new)' if run.bucket_created else ''}, keys under {run.prefix}")
        results: list[PhaseResult] = []
        notes: list[str] = list(monitor.notes)
        try:
            for spec in plan_phases(s):
                results.append(await run.run_phase(spec))
        finally:  # also on Ctrl-C: the task is cancelled once and may still await here
            cleanup = await run.cleanup()
            run.say("  cleanup: " + ", ".join(f"{k} {v}" for k, v in cleanup.items()))
        notes.extend(disk_limit_notes(s, results))
        return RunResult(endpoint=s.endpoint, bucket=run.bucket, bucket_created=run.bucket_created,
                         phases=tuple(results), monitor_note=monitor.gateway_unavailable,
                         cleanup=cleanup, notes=tuple(notes))

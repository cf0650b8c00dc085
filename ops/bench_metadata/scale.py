"""``objstore bench-metadata --scale N``: one metadata node holding N object records.

Loads N small version records into one bucket of a metadata node this command spawns,
recording the load curve (every ``step`` records: the commit rate over the last step, the
node's CPU per commit over it, and its RSS), then measures what the targets name: the
node's resident memory (psutil), the latency of
a 1000-key listing page (``list_objects(start_after=..., max_keys=1000)``, end to end
through MetadataClient, at the start, middle and end of the key space), the size of the
newest snapshot, and the restart time (SIGTERM, start again, until ``/health`` answers
and a read returns).

Two loaders: ``http`` sends every PutObject through the node's HTTP API from
``concurrency`` concurrent callers sharing one MetadataClient (the gateway's path);
``direct`` proposes the same commands, with client sessions, through the service's own
proposal path (a one-voter :class:`~metadata.replication.driver.RaftReplicator`: durable log
with group commit, state machine, snapshots) in this process, on the node's data dir, before the node
process is started on it. The node is always stopped and its temp dir removed.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Iterator, TextIO

import aiohttp
import psutil
from yarl import URL

from metadata.api import commands as c
from metadata.api.client import MetadataClient, path_with_query
from metadata.api.page_rows import ROWS_FORM
from metadata import heap
from objstore import internal_auth
from objstore.errors import ObjstoreError
from objstore.hlc import HLC
from objstore.types import NodeInfo
from ops.bench.monitor import process_cpu
from ops.bench.stats import percentile
from ops.bench_metadata.spawn import MetadataNodes
from ops.bench_metadata.workload import NODES, bench_version

MiB = 1024 * 1024
TARGET_RSS = 600 * MiB
TARGET_PAGE_P50_S = 0.025
TARGET_PAGE_P99_S = 0.100
TARGET_RATE_KEPT = 0.8  # the last step's commit rate over the first step's
TARGET_RESTART_S = 30.0
BUCKET = "scale"
OWNER = "bench-metadata"


@dataclass(frozen=True)
class ScaleSettings:
    count: int = 1_000_000
    loader: str = "http"  # "http" | "direct"
    concurrency: int = 256
    repeats: int = 20
    restart_timeout_s: float = 0.0  # 0: 300 s, or 60 s per million records when that is more
    base_dir: str | None = None  # where the node's data goes (default: a temp dir)
    step: int = 0  # records per point of the load curve (0: a tenth of ``count``, at least 1000)

    @property
    def restart_timeout(self) -> float:
        """How long the node's restart may take: loading the snapshot and replaying the log
        behind it grow with the records (about 30 s per million on a loaded 2-core machine)."""
        return self.restart_timeout_s or max(300.0, 60.0 * self.count / 1e6)

    @property
    def curve_step(self) -> int:
        return self.step or max(1000, self.count // 10)


@dataclass(frozen=True)
class CurvePoint:
    """The load curve at ``records`` loaded: the rate and node CPU over the last step."""

    records: int
    seconds: float  # since the load started
    commits_per_s: float
    node_cpu_us_per_commit: float | None
    rss: int | None


class Curve:
    """Collects :class:`CurvePoint` s while loading: call :meth:`mark` at every multiple of ``step``."""

    def __init__(self, step: int, pid_of, clock=time.monotonic, out: TextIO | None = None) -> None:
        self.step = step
        self._out = out
        self.points: list[CurvePoint] = []
        self._pid_of = pid_of
        self._clock = clock
        self._t0 = clock()
        self._last = (0, self._t0, self._cpu())

    def _cpu(self) -> float | None:
        pid = self._pid_of()
        try:
            t = psutil.Process(pid).cpu_times() if pid else None
        except psutil.Error:
            t = None
        return None if t is None else t.user + t.system

    def mark(self, records: int) -> None:
        now, cpu = self._clock(), self._cpu()
        n0, t0, cpu0 = self._last
        n = records - n0
        if n <= 0:
            return
        per = None if cpu is None or cpu0 is None else round((cpu - cpu0) / n * 1e6, 1)
        p = CurvePoint(records, round(now - self._t0, 2), round(n / max(now - t0, 1e-9), 1), per,
                       _rss(self._pid_of()))
        self.points.append(p)
        self._last = (records, now, cpu)
        if self._out is not None:
            self._out.write(f"  curve: {p.records:,} records, {p.commits_per_s:,.0f} commits/s, node "
                            f"{p.node_cpu_us_per_commit} CPU-us/commit, RSS {(p.rss or 0) / MiB:.0f} MiB\n")
            self._out.flush()


@dataclass
class ScaleResult:
    count: int
    loader: str
    concurrency: int
    load_s: float = 0.0
    loaded: int = 0
    load_errors: int = 0
    rss_after_load: int | None = None
    rss_peak_load: int | None = None
    rss_after_restart: int | None = None
    pages: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    curve: list[CurvePoint] = field(default_factory=list)
    snapshot_bytes: int | None = None
    snapshot_index: int | None = None
    applied_index: int | None = None
    log_bytes: int | None = None
    first_start_s: float | None = None  # direct loader: the node's first start on the loaded data
    stop_s: float | None = None
    restart_health_s: float | None = None
    restart_read_s: float | None = None
    restart_cpu_s: float | None = None  # the restarted node's CPU until its first read answered
    replication: str | None = None  # the node's mode from its status: "single" or "raft"
    objects_below_policy: int | None = None  # 0 while the records' nodes heartbeat (the bench's)
    notes: list[str] = field(default_factory=list)

    @property
    def load_rate(self) -> float | None:
        return self.loaded / self.load_s if self.load_s > 0 else None

    @property
    def rate_kept(self) -> float | None:
        """The last curve step's commit rate over the first step's (1.0: flat)."""
        if len(self.curve) < 2 or not self.curve[0].commits_per_s:
            return None
        return self.curve[-1].commits_per_s / self.curve[0].commits_per_s

    def checks(self) -> dict[str, bool | None]:
        def worst(field: str) -> float | None:
            return max((p[field] for p in self.pages.values() if p.get(field) is not None), default=None)

        p50, p99, kept = worst("p50_ms"), worst("p99_ms"), self.rate_kept
        return {
            "rss_under_600MiB": None if self.rss_after_load is None else self.rss_after_load < TARGET_RSS,
            "page_p50_under_25ms": None if p50 is None else p50 < TARGET_PAGE_P50_S * 1000,
            "page_p99_under_100ms": None if p99 is None else p99 < TARGET_PAGE_P99_S * 1000,
            "rate_kept_80pct": None if kept is None else kept >= TARGET_RATE_KEPT,
            "restart_under_30s": None if self.restart_read_s is None else self.restart_read_s < TARGET_RESTART_S,
        }

    @property
    def ok(self) -> bool:
        return self.loaded == self.count and self.load_errors == 0 and all(v for v in self.checks().values())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["load_rate_per_s"] = None if self.load_rate is None else round(self.load_rate, 1)
        d["rate_kept"] = None if self.rate_kept is None else round(self.rate_kept, 3)
        d["checks"] = self.checks()
        return d


def scale_key(i: int) -> str:
    """The i-th key loaded: zero-padded so key order is load order."""
    return f"data/{i:08d}.bin"


def page_positions(count: int) -> dict[str, str | None]:
    """``start_after`` of the measured pages: before the first key, the middle, the last full page."""
    return {"start": None, "middle": scale_key(count // 2), "end": scale_key(count - 1001) if count > 1000 else None}


def snapshot_index(path: Path) -> int | None:
    """The log index in a snapshot file's name (``snap-<index>-<term>.snap``), or None."""
    if not path.name.endswith(".snap"):
        return None
    parts = path.name.removesuffix(".snap").split("-")
    ok = len(parts) == 3 and parts[0] == "snap" and parts[1].isdigit() and parts[2].isdigit()
    return int(parts[1]) if ok else None


def newest_snapshot(paths: Iterable[Path]) -> Path | None:
    """The snapshot file with the highest index among ``paths`` (single-node or Raft layout)."""
    named = [(i, p) for p in paths if (i := snapshot_index(p)) is not None]
    return max(named)[1] if named else None


def _rss(pid: int | None) -> int | None:
    try:
        return psutil.Process(pid).memory_info().rss if pid else None
    except psutil.Error:
        return None


async def _progress(out: TextIO, label: str, done: list[int], total: int, pid_of, peak: list[int]) -> None:
    t0 = time.monotonic()
    while True:
        await asyncio.sleep(10)
        rss = _rss(pid_of())
        if rss:
            peak[0] = max(peak[0], rss)
        el = time.monotonic() - t0
        rate = done[0] / el if el else 0
        eta = (total - done[0]) / rate if rate else float("inf")
        out.write(f"  {label}: {done[0]:,}/{total:,} in {el:.0f}s ({rate:,.0f}/s, ETA {eta:.0f}s)"
                  + (f", node RSS {rss / MiB:.0f} MiB" if rss else "") + "\n")
        out.flush()


@contextlib.asynccontextmanager
async def _reporting(out: TextIO, label: str, done: list[int], total: int, pid_of,
                     peak: list[int]) -> AsyncIterator[None]:
    """Report loading progress every 10 s while the body runs."""
    task = asyncio.create_task(_progress(out, label, done, total, pid_of, peak))
    try:
        yield
    finally:
        task.cancel()


async def _load_http(client: MetadataClient, s: ScaleSettings, res: ScaleResult, done: list[int],
                     curve: Curve) -> None:
    hlc, nxt = HLC("gwbench"), [0]

    async def worker() -> None:
        while nxt[0] < s.count:
            i = nxt[0]
            nxt[0] += 1
            key = scale_key(i)
            try:
                await client.put_object(bench_version(BUCKET, key, hlc.next(), time.time(), OWNER, ordinal=i))
                done[0] += 1
                if done[0] % curve.step == 0:
                    curve.mark(done[0])
            except Exception as exc:  # noqa: BLE001 - counted, reported
                res.load_errors += 1
                if res.load_errors == 1:
                    res.notes.append(f"first load error: {type(exc).__name__}: {exc}")

    await asyncio.gather(*(worker() for _ in range(s.concurrency)))


async def _load_direct(data_dir: Path, address: str, s: ScaleSettings, res: ScaleResult, done: list[int],
                       curve: Curve) -> None:
    """Propose through a one-voter Raft group in this process; each worker is one client session."""
    from metadata.replication.driver import open_one_voter

    rep = await open_one_voter("m1", data_dir, address)
    try:
        hlc, nxt = HLC("gwbench"), [0]
        for node in _NODES:  # registered first, as their heartbeats do in the http loader: records at full policy
            (await rep.propose(c.RegisterNode(node))).raise_for_error()
        (await rep.propose(c.CreateBucket(BUCKET, OWNER, "replica:3", time.time()))).raise_for_error()

        async def worker(w: int) -> None:
            client_id, seq = f"loader-{w}/{uuid.uuid4().hex[:16]}", 0
            while nxt[0] < s.count:
                i = nxt[0]
                nxt[0] += 1
                seq += 1
                v = bench_version(BUCKET, scale_key(i), hlc.next(), time.time(), OWNER, ordinal=i)
                try:
                    outcome = await rep.propose(c.PutObject(v).with_session(client_id, seq, seq))
                except ObjstoreError as exc:  # not committed in time (a loaded machine): counted, go on
                    outcome = c.Outcome.of_error(exc)
                if outcome.error is not None:
                    res.load_errors += 1
                else:
                    done[0] += 1
                    if done[0] % curve.step == 0:
                        curve.mark(done[0])

        await asyncio.gather(*(worker(w) for w in range(s.concurrency)))
    finally:
        await rep.close()


async def _raw_list(session: aiohttp.ClientSession, address: str, secret: str, start_after: str | None) -> int:
    """One signed ``GET /v1/list`` whose body is read but not parsed; returns its length."""
    path_qs = path_with_query("/v1/list", {"bucket": BUCKET, "start_after": start_after, "max_keys": 1000,
                                           "form": ROWS_FORM})  # as MetadataClient.list_objects asks
    url = URL(f"http://{address}{path_qs}", encoded=True)
    async with session.get(url, headers=internal_auth.headers(secret, "GET", path_qs, target=address)) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"list: HTTP {resp.status}: {body[:200]!r}")
    return len(body)


_NODES = [NodeInfo(n, f"127.0.0.1:{1 + i}", zone=f"zone-{i % 3}") for i, n in enumerate(NODES)]
_STATS = {"capacity_bytes": 1 << 40, "used_bytes": 0, "free_bytes": 1 << 40, "reserve_bytes": 0}


async def _heartbeat_round(client: MetadataClient) -> None:
    """One heartbeat from each storage node the records name (:data:`workload.NODES`):
    the first registers them, later ones keep them up, as a live cluster's nodes do, so
    loaded records are at full policy."""
    for node in _NODES:
        with contextlib.suppress(ObjstoreError):
            await client.heartbeat(node, _STATS)


async def _heartbeats(client: MetadataClient, interval: float = 1.0) -> None:
    """:func:`_heartbeat_round` every ``interval`` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        await _heartbeat_round(client)


def _ms(lat: list[float], q: float) -> float:
    return round(percentile(sorted(lat), q) * 1000, 2)  # type: ignore[operator]


def _cpu_of(pid: int) -> float | None:
    try:
        return process_cpu(pid)
    except psutil.Error:
        return None


@contextlib.contextmanager
def collector_pauses() -> Iterator[list[tuple[int, float]]]:
    """(generation, seconds) of every cyclic collection in this process while the body runs."""
    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - started[0]))

    gc.callbacks.append(callback)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(callback)


async def _measure_pages(client: MetadataClient, session: aiohttp.ClientSession, address: str, secret: str,
                         s: ScaleSettings, res: ScaleResult, pid: int) -> None:
    """Each position's page ``repeats`` times end to end, then as raw HTTP (server + transport).
    Beside the latencies, the CPU per end-to-end page of the node (every thread: a snapshot
    being written counts too) and of this process (the client's share: request, parse), and
    the longest cyclic collection of this process during the end-to-end pages.

    This process's heap is settled first (:func:`metadata.heap.settle`, as the node does
    after loading): each parsed page makes a thousand records, enough survive a young
    collection to start a full one every few pages, and a full one walked everything this
    process imported and kept (30-50 ms on a loaded machine) inside whichever page was being
    timed: the benchmark's own heap, not the node's, showing up as the page's p99."""
    res.notes.append(f"this process's heap settled in {heap.settle() * 1000:.0f} ms before the pages were measured")
    for name, start_after in page_positions(s.count).items():
        lat, raw, sizes, nbytes = [], [], set(), 0
        node0, own0 = _cpu_of(pid), time.process_time()
        with collector_pauses() as pauses:
            for _ in range(s.repeats):
                t = time.perf_counter()
                page = await client.list_objects(BUCKET, start_after=start_after, max_keys=1000)
                lat.append(time.perf_counter() - t)
                sizes.add(len(page.contents))
        node1, own1 = _cpu_of(pid), time.process_time()
        node_ms = None if node0 is None or node1 is None else round((node1 - node0) / s.repeats * 1000, 2)
        for _ in range(s.repeats):
            t = time.perf_counter()
            nbytes = await _raw_list(session, address, secret, start_after)
            raw.append(time.perf_counter() - t)
        res.pages[name] = {"start_after": start_after, "keys": min(sizes), "bytes": nbytes,
                           "p50_ms": _ms(lat, 50), "p99_ms": _ms(lat, 99),
                           "http_only_p50_ms": _ms(raw, 50), "http_only_p99_ms": _ms(raw, 99),
                           "node_cpu_ms": node_ms, "client_cpu_ms": round((own1 - own0) / s.repeats * 1000, 2),
                           "samples": s.repeats, "slowest_sample": lat.index(max(lat)) + 1,
                           "client_gc_max_ms": round(max((d for _, d in pauses), default=0.0) * 1000, 2)}


async def _wait_read(nodes: MetadataNodes, secret: str, key: str, timeout: float) -> tuple[float, float]:
    """Seconds from now until /health answers 200, and until ``get_object(key)`` returns."""
    t0 = time.monotonic()
    await nodes.wait_ready(timeout)
    health = time.monotonic() - t0
    async with MetadataClient(nodes.addresses, secret, deadline=timeout) as client:
        await client.get_object(BUCKET, key)
    return health, time.monotonic() - t0


async def run_scale(s: ScaleSettings, out: TextIO) -> ScaleResult:
    res = ScaleResult(s.count, s.loader, s.concurrency)
    tmp = None if s.base_dir else tempfile.TemporaryDirectory(prefix="objstore-scale-")
    base = Path(s.base_dir or tmp.name)  # type: ignore[union-attr]
    secret = uuid.uuid4().hex
    # The in-process loader bootstraps the node's one-voter group at the node's own address.
    nodes = MetadataNodes(1, base, secret, peers=s.loader != "direct")
    data_dir = base / "m1"
    done, peak = [0], [0]
    load_start = os.getloadavg()[0]
    try:
        out.write(f"scale: {s.count:,} records, loader {s.loader}, {s.concurrency} concurrent, data in {base}\n")
        t0 = time.monotonic()
        if s.loader == "direct":
            curve = Curve(s.curve_step, os.getpid, out=out)  # the loader is this process
            async with _reporting(out, "loaded (direct)", done, s.count, lambda: None, peak):
                await _load_direct(data_dir, nodes.addresses[0], s, res, done, curve)
            res.curve = curve.points
            res.load_s = time.monotonic() - t0
            t1 = time.monotonic()
            nodes.start()
            await nodes.wait_ready(s.restart_timeout)
            res.first_start_s = time.monotonic() - t1
            res.notes.append("loaded in-process through a one-voter RaftReplicator.propose (durable log, group commit, "
                             "apply, snapshots), then the node process started on that data dir; "
                             f"its first start took {res.first_start_s:.1f}s; 'after load' RSS is the node's after "
                             "that start (recovered from snapshot + log), not after a live load")
        else:
            nodes.start()
            await nodes.wait_ready()
        pid = nodes.procs[0].pid
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=s.concurrency + 8)) as session:
            client = MetadataClient(nodes.addresses, secret, session=session, client_id="scale", deadline=60)
            await _heartbeat_round(client)
            beats = asyncio.create_task(_heartbeats(client))
            if s.loader == "http":
                await client.create_bucket(BUCKET, OWNER, "replica:3", time.time())
                curve = Curve(s.curve_step, lambda: pid, out=out)
                async with _reporting(out, "loaded (http)", done, s.count, lambda: pid, peak):
                    await _load_http(client, s, res, done, curve)
                res.curve = curve.points
                res.load_s = time.monotonic() - t0
            res.loaded = done[0]
            res.rss_after_load = _rss(pid)
            res.rss_peak_load = max(peak[0], res.rss_after_load or 0) or None
            out.write(f"  loaded {res.loaded:,} in {res.load_s:.0f}s; measuring listing pages\n")
            snap_before = (await client.status()).get("last_snapshot_index")
            await _measure_pages(client, session, nodes.addresses[0], secret, s, res, pid)
            st = await client.status()
            if st.get("last_snapshot_index") != snap_before:
                res.notes.append(f"a snapshot (at {st.get('last_snapshot_index')}) was written while the pages were "
                                 "measured: its encoding shares the node's CPU with them")
            res.applied_index, res.log_bytes = st.get("applied_index"), st.get("log_bytes")
            res.replication = st.get("replication", "single")
            res.objects_below_policy = st.get("objects_below_policy")
            beats.cancel()
            await asyncio.gather(beats, return_exceptions=True)
        out.write("  restarting the node\n")
        res.stop_s = nodes.procs[0].stop(grace=s.restart_timeout)
        snap = newest_snapshot(data_dir.rglob("snap-*.snap"))
        res.snapshot_bytes = snap.stat().st_size if snap else None
        res.snapshot_index = snapshot_index(snap) if snap else None
        nodes.procs[0].start(nodes.env)
        res.restart_health_s, res.restart_read_s = await _wait_read(nodes, secret, scale_key(s.count - 1),
                                                                    s.restart_timeout)
        res.rss_after_restart = _rss(nodes.procs[0].pid)
        res.restart_cpu_s = _cpu_of(nodes.procs[0].pid)
        res.notes.append(f"machine: {os.cpu_count()} CPUs shared with other work; 1-minute load average "
                         f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
        return res
    finally:
        nodes.stop()
        if tmp is not None:
            tmp.cleanup()


def format_scale(r: ScaleResult, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(r.to_dict(), indent=2)

    def mib(v: int | None) -> str:
        return "-" if v is None else f"{v / MiB:.0f} MiB"

    def sec(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f} s"

    checks = r.checks()
    mark = {True: "ok", False: "MISSED", None: "-"}
    lines = [
        f"records            {r.loaded:,} of {r.count:,} ({r.load_errors} errors) in one node ({r.replication})",
        f"load               {sec(r.load_s)} ({r.load_rate or 0:,.0f} records/s, loader {r.loader}, "
        f"{r.concurrency} concurrent)",
        f"node RSS           {mib(r.rss_after_load)} after load (peak seen {mib(r.rss_peak_load)}), "
        f"{mib(r.rss_after_restart)} after restart   target < 600 MiB: {mark[checks['rss_under_600MiB']]}",
    ]
    if r.curve:
        lines.append("load curve         records   seconds  commits/s  node CPU-us/commit  node RSS")
        lines += [f"                   {p.records:>9,} {p.seconds:>8.1f} {p.commits_per_s:>10,.0f} "
                  f"{'-' if p.node_cpu_us_per_commit is None else f'{p.node_cpu_us_per_commit:,.0f}':>19} "
                  f"{mib(p.rss):>9}" for p in r.curve]
        lines.append(f"                   last step's rate / first step's: "
                     f"{'-' if r.rate_kept is None else f'{r.rate_kept:.2f}'}   target >= {TARGET_RATE_KEPT}: "
                     f"{mark[checks['rate_kept_80pct']]}")
    for name, p in r.pages.items():
        lines.append(f"1000-key page {name:<6} p50 {p['p50_ms']} ms  p99 {p['p99_ms']} ms  ({p['keys']} keys, "
                     f"{p['bytes']:,} bytes; HTTP only, unparsed: p50 {p['http_only_p50_ms']} ms  "
                     f"p99 {p['http_only_p99_ms']} ms; CPU per page: node {p.get('node_cpu_ms')} ms, "
                     f"client {p.get('client_cpu_ms')} ms; slowest: sample {p.get('slowest_sample')} of "
                     f"{p.get('samples')}; client's longest GC {p.get('client_gc_max_ms')} ms)")
    lines += [
        f"                   target p50 < 25 ms: {mark[checks['page_p50_under_25ms']]}, "
        f"p99 < 100 ms: {mark[checks['page_p99_under_100ms']]}",
        (f"snapshot           {mib(r.snapshot_bytes)} ({r.snapshot_bytes:,} bytes) at index {r.snapshot_index}; "
         if r.snapshot_bytes is not None else "snapshot           none written; ")
        + f"applied {r.applied_index}; log {mib(r.log_bytes)}",
        f"below policy       {r.objects_below_policy} versions (the records' six nodes heartbeat: 0 expected)",
        f"stop (SIGTERM)     {sec(r.stop_s)}",
        f"restart            health after {sec(r.restart_health_s)}, first read after {sec(r.restart_read_s)} "
        f"({sec(r.restart_cpu_s)} of the node's CPU)   target < 30 s: {mark[checks['restart_under_30s']]}",
    ]
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)

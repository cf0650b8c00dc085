"""objstore on five hosts under network faults: strong histories stay linearizable, nothing
acknowledged is lost, and a gateway cut off from the metadata majority answers 503 in
bounded time while the majority side keeps working.

The cluster is the five-host example deployment (``ops/deploy/examples/five-hosts``: three
metadata nodes on h1-h3, a storage node on every host, gateways on h4 and h5), each host a
network namespace; clients run on a host of their own that faults never touch. Per seed, a
seeded nemesis (:mod:`tests.harness.hosts.nemesis`: partitions, an isolated host, a
majority/minority split putting a gateway with the minority, one-way cuts, packet loss,
bandwidth limits, heals) runs while

- register clients (half through each gateway) put/get/delete/cas a few keys through S3
  (:mod:`tests.linearizability.s3_register`): every read is strong, so the whole history,
  with a last read of every key through each gateway after healing, must be linearizable;
- writers put write-once objects of 1 KB-1.5 MB: after healing, every acknowledged one must
  read back byte-identical through each gateway (objects lost must be 0).

Environment: ``HOSTS_SEEDS`` (default ``1,2``: a list ``3,7`` or a range ``1-10``; the
first seed runs by default, the others are ``slow``),
``HOSTS_SECONDS`` (default 6: seconds of nemesis per seed, at least one fault of each kind);
the ``slow`` test runs ``HOSTS_SLOW_SEEDS`` (default ``1-10``) of ``HOSTS_SLOW_SECONDS`` (40).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import aiohttp
import pytest

from metadata.api.client import MetadataClient
from objstore.ring import build_ring
from ops.cli.metadata_admin import collect_status
from ops.cli.status import collect
from tests.harness.hosts import rules
from tests.harness.hosts.deploy import ACCESS_KEY, CLIENT, ROLES, SECRET_KEY, Deployment
from tests.harness.hosts.nemesis import KINDS, Player, plan
from tests.harness.hosts.netns import host_executor
from tests.linearizability import Recorder, check, save_failing_history
from tests.linearizability.s3_register import S3Endpoint, S3Failure, S3Register, classify
from tests.linearizability.workload import ClientState, Tally, choose, perform

pytestmark = pytest.mark.integration

SERVERS = ["h1", "h2", "h3", "h4", "h5"]
METADATA_HOSTS = ["h1", "h2", "h3"]
GATEWAY_HOSTS = ["h4", "h5"]
BUCKET = "partitions"
CLIENTS = 6
WRITERS = 2
KEYS_PER_SEED = 4
ONCE_SIZES = (1000, 100_000, 1_500_000)


def _seeds(var: str, default: str) -> list[int]:
    out: list[int] = []
    for part in os.environ.get(var, default).split(","):
        lo, _, hi = part.strip().partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


@pytest.fixture(scope="module")
def cluster(five_hosts: Deployment) -> Deployment:
    in_client(five_hosts, lambda: asyncio.run(_create_bucket(five_hosts)))
    return five_hosts


def in_client(d: Deployment, fn):
    with host_executor(d.net[CLIENT], 1) as pool:
        return pool.submit(fn).result()


def gateways(d: Deployment) -> list[S3Endpoint]:
    return [S3Endpoint(d.endpoint(h), ACCESS_KEY, SECRET_KEY) for h in GATEWAY_HOSTS]


async def _create_bucket(d: Deployment) -> None:
    async with aiohttp.ClientSession() as session:
        await S3Register(session, gateways(d)[0], BUCKET).create_bucket()


@dataclass
class Written:
    """Write-once objects: acknowledged (key -> md5, size) and those with an unknown outcome."""

    acked: dict[str, tuple[str, int]] = field(default_factory=dict)
    unknown: dict[str, tuple[str, int]] = field(default_factory=dict)


async def _workload(d: Deployment, seed: int, rng: random.Random, stop: threading.Event, recorder: Recorder,
                    keys: list[str], written: Written) -> None:
    gws = gateways(d)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def client(i: int, state: ClientState) -> None:
            reg = S3Register(session, gws[i % len(gws)], BUCKET, request_timeout=6.0)
            while not stop.is_set():
                kind, key, inp = choose(state, keys)
                await perform(recorder, reg, state, kind, key, inp)
                if key not in state.known:  # unknown outcome (or a refused cas): no tight loop on a dead gateway
                    await asyncio.sleep(0.1)

        async def writer(j: int, wrng: random.Random) -> None:
            reg = S3Register(session, gws[j % len(gws)], BUCKET, request_timeout=10.0)
            n = 0
            while not stop.is_set():
                n += 1
                key = f"once/s{seed}/w{j}/{n}"
                body = wrng.randbytes(wrng.choice(ONCE_SIZES))
                digest = (hashlib.md5(body).hexdigest(), len(body))
                try:
                    etag = await reg.put_bytes(key, body)
                except Exception as exc:  # noqa: BLE001 - classified: only unknown outcomes are expected
                    if classify("put", exc) is None:
                        raise
                    written.unknown[key] = digest
                    await asyncio.sleep(0.1)
                    continue
                assert etag == digest[0], (key, etag, digest)
                written.acked[key] = digest

        states = [ClientState(i, random.Random(rng.random())) for i in range(CLIENTS)]
        await asyncio.gather(*(client(i, s) for i, s in enumerate(states)),
                             *(writer(j, random.Random(rng.random())) for j in range(WRITERS)))


async def _until_serving(d: Deployment, timeout: float = 60.0) -> float:
    """After healing: until a PUT and a strong GET succeed through every gateway; seconds taken."""
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as session:
        for gw in gateways(d):
            reg = S3Register(session, gw, BUCKET, request_timeout=5.0)
            while True:
                try:
                    await reg.put_bytes("probe", b"probe")
                    if await reg.get_bytes("probe") == b"probe":
                        break
                except Exception as exc:  # noqa: BLE001
                    if classify("put", exc) is None:
                        raise
                assert time.monotonic() - t0 < timeout, f"{gw.endpoint} not serving {timeout}s after healing"
                await asyncio.sleep(0.2)
    return time.monotonic() - t0


async def _final_reads(d: Deployment, recorder: Recorder, keys: list[str]) -> None:
    """One more recorded strong read of every key through each gateway."""
    async with aiohttp.ClientSession() as session:
        for g, gw in enumerate(gateways(d)):
            reg = S3Register(session, gw, BUCKET)
            state = ClientState(100 + g, random.Random(g))
            for key in keys:
                await perform(recorder, reg, state, "get", key, None)


async def _lost_objects(d: Deployment, written: Written) -> list[str]:
    """Every acknowledged write-once object, and every unknown one that exists, read back
    through each gateway: the keys whose bytes are missing or differ."""
    lost: list[str] = []
    async with aiohttp.ClientSession() as session:
        for gw in gateways(d):
            reg = S3Register(session, gw, BUCKET, request_timeout=30.0)
            for key, (md5, size) in {**written.unknown, **written.acked}.items():
                try:
                    body = await reg.get_bytes(key)
                except S3Failure as exc:
                    if exc.code == "NoSuchKey" and key in written.unknown:
                        continue
                    lost.append(f"{key} via {gw.endpoint}: {exc}")
                    continue
                if (hashlib.md5(body).hexdigest(), len(body)) != (md5, size):
                    lost.append(f"{key} via {gw.endpoint}: {len(body)} bytes, not the {size} written")
    return lost


@dataclass
class RunResult:
    """What one run of the workload did, checked: the verdict is asserted by :func:`run_workload`."""

    ops: list
    tally: Tally
    written: Written
    lost: list[str]


def run_workload(d: Deployment, seed: int, chaos: Callable[[threading.Event], list[str]], what: str,
                 reproduce: str) -> RunResult:
    """The register clients and writers run (from the client host) while ``chaos(stop)`` runs
    here, returning its log (it must leave the cluster whole); then every key is read through
    each gateway, the history is checked and every written object read back. Fails the test
    if the history is not linearizable or an acknowledged object is lost."""
    rng = random.Random(seed)
    keys = [f"reg/s{seed}/k{i}" for i in range(KEYS_PER_SEED)]
    recorder = Recorder(classify=classify)
    written = Written()
    stop = threading.Event()
    t0 = time.monotonic()
    with host_executor(d.net[CLIENT], 1) as pool:
        work = pool.submit(asyncio.run, _workload(d, seed, random.Random(rng.random()), stop, recorder, keys, written))
        try:
            events = chaos(stop)
        finally:
            stop.set()
            d.net.heal()
        work.result()
    workload_seconds = time.monotonic() - t0
    recovered = in_client(d, lambda: asyncio.run(_until_serving(d)))
    in_client(d, lambda: asyncio.run(_final_reads(d, recorder, keys)))
    lost = in_client(d, lambda: asyncio.run(_lost_objects(d, written)))
    ops = recorder.history()
    result = check(ops, timeout=120.0)
    tally = Tally.of(ops)
    print(f"\nseed {seed}: {len(ops)} register ops in {workload_seconds:.1f}s ({tally.describe()}); "
          f"{len(written.acked)} write-once objects acknowledged, {len(written.unknown)} unknown, "
          f"{len(lost)} lost; serving again {recovered:.1f}s after; {what}; "
          f"check {result.verdict} in {result.seconds:.2f}s\n  " + "\n  ".join(events))
    if not result.ok:
        path = save_failing_history(ops, f"seed {seed}\n{result.describe()}\n" + "\n".join(events))
        pytest.fail(f"seed {seed}: {result.describe()}\nhistory: {path}\nreproduce: {reproduce} pytest {__file__}")
    assert not lost, lost
    # Not vacuous: work got done, values were read, cas both held and failed, objects were written.
    assert tally.reads_of_values >= 5 and tally.writes_ok >= 5 and tally.cas_ok + tally.cas_failed >= 2, tally.describe()
    assert len(written.acked) >= 3, written
    return RunResult(ops, tally, written, lost)


def run_seed(d: Deployment, seed: int, seconds: float, hold: tuple[float, float] = (1.0, 3.0),
             gap: tuple[float, float] = (0.5, 1.5)) -> None:
    """One seed of the network nemesis (every fault kind at least once) under the workload."""
    steps = plan(random.Random(seed * 7919), seconds, SERVERS, METADATA_HOSTS, GATEWAY_HOSTS, hold, gap)
    player = Player(d.net)

    def chaos(stop: threading.Event) -> list[str]:
        player.play(steps, stop)
        return player.events

    run_workload(d, seed, chaos, f"faults {', '.join(s.kind for s in steps)}",
                 f"HOSTS_SEEDS={seed} HOSTS_SECONDS={seconds:g}")
    assert set(player.injected) == set(KINDS), player.injected


def _first_by_default(seeds: list[int]) -> list:
    """The first seed in the default run; the others marked ``slow``."""
    return [s if i == 0 else pytest.param(s, marks=pytest.mark.slow) for i, s in enumerate(seeds)]


@pytest.mark.parametrize("seed", _first_by_default(_seeds("HOSTS_SEEDS", "1,2")))
def test_strong_histories_stay_linearizable_and_nothing_acknowledged_is_lost(cluster, seed):
    # Short holds: six faults, one of each kind, in about ten seconds.
    run_seed(cluster, seed, float(os.environ.get("HOSTS_SECONDS", "6")), hold=(0.8, 1.6), gap=(0.3, 0.6))


@pytest.mark.slow
@pytest.mark.parametrize("seed", _seeds("HOSTS_SLOW_SEEDS", "1-10"))
def test_many_seeds_of_network_faults(cluster, seed):
    # Longer holds than the metadata timeout: clients see 503s and elections happen.
    run_seed(cluster, 1000 + seed, float(os.environ.get("HOSTS_SLOW_SECONDS", "40")), hold=(2.0, 6.0), gap=(0.5, 2.0))


async def _timed(reg: S3Register, method: str, key: str, body: bytes = b"") -> tuple[int, float]:
    t0 = time.monotonic()
    try:
        status, _, _ = await reg.request(method, f"/{BUCKET}/{key}", body)
    except (asyncio.TimeoutError, aiohttp.ClientError):
        return -1, time.monotonic() - t0
    return status, time.monotonic() - t0


async def _lead(d: Deployment, node_id: str, cut_off: list[str]) -> str:
    """Hand the metadata leadership to ``node_id``; a key whose placement (replica:3) holds
    two or more storage nodes of the hosts ``cut_off``."""
    async with MetadataClient([s.address for s in d.of_role("metadata")], d.secret) as meta:
        await meta.change_membership("transfer", node_id)
        ring = build_ring(await meta.get_cluster_map())
    silent = {d.service("storage", h).address for h in cut_off}
    by_id = {n.node_id: n.address for n in ring.nodes}
    return next(k for k in (f"minority/first{i}" for i in range(10_000))
                if sum(by_id[i] in silent for i in ring.locate(BUCKET, k, 3)) >= 2)


# A gateway's bounds: its metadata calls give up after metadata_timeout_seconds (3 s in the
# example configs), and once one has failed, strong reads and writes fail at once for 2 s
# (gateway/outage.py); a storage node that went silent costs a write at most the straggler
# timeout and a read the read-stall timeout (2 s each, the gateway's defaults) before it is
# skipped. So every answer on the minority side comes within 3 + 2 s; SLACK is for a loaded
# machine.
METADATA_TIMEOUT = 3.0
STORAGE_STALL = 2.0
SLACK = 2.0
LEASE_OVER = 1.0  # seconds: longer than a leader's read lease (300 ms) past the split


def test_a_gateway_with_the_minority_answers_503_in_bounded_time_while_the_majority_works(cluster):
    """Split {h3 (metadata m3, the leader), h5 (gateway)} from the rest: gw5 answers every
    strong GET with 503 within its metadata timeout, and every PUT with 503 within the
    metadata timeout plus one storage stall bound (the first PUT goes before any metadata
    call has failed, so it writes its blob: its placement may hold two silent storage
    nodes); gw4, with the majority, still writes and reads."""
    d = cluster
    gw4, gw5 = gateways(d)
    in_client(d, lambda: asyncio.run(_until_serving(d)))
    # The worst case: the leader is cut off with gw5, and the first PUT's placement has two
    # storage nodes gw5 cannot reach (its blob goes to handoff nodes after the stall bound).
    first = in_client(d, lambda: asyncio.run(_lead(d, "m3", ["h1", "h2", "h4"])))
    in_client(d, lambda: asyncio.run(_until_serving(d)))

    async def before() -> None:
        async with aiohttp.ClientSession() as session:
            await S3Register(session, gw5, BUCKET).put_bytes("minority/k", b"before the split")

    in_client(d, lambda: asyncio.run(before()))
    d.net.apply(rules.split(SERVERS, ["h3", "h5"]))
    # If m3 led, it may still answer strong reads from its lease (300 ms after the last
    # heartbeat a majority acknowledged; correct, since no other leader can be elected
    # before it ends): the minority's requests begin once any such lease is over.
    time.sleep(LEASE_OVER)
    try:
        async def during() -> dict:
            async with aiohttp.ClientSession() as session:
                minority = S3Register(session, gw5, BUCKET, request_timeout=60.0)
                majority = S3Register(session, gw4, BUCKET, request_timeout=60.0)

                async def on_minority() -> list:
                    out = [("PUT",) + await _timed(minority, "PUT", first, b"x" * 1000)]
                    for i in range(2):
                        out.append(("GET",) + await _timed(minority, "GET", "minority/k"))
                        out.append(("PUT",) + await _timed(minority, "PUT", f"minority/{i}", b"x" * 1000))
                    return out

                async def on_majority() -> list:
                    # Strong reads first, then writes and reads, at the same time as the minority's.
                    out = [("GET",) + await _timed(majority, "GET", "minority/k") for _ in range(2)]
                    for i in range(2):
                        out.append(("PUT",) + await _timed(majority, "PUT", f"majority/{i}", b"y" * 1000))
                        out.append(("GET",) + await _timed(majority, "GET", f"majority/{i}"))
                    return out

                mino, majo = await asyncio.gather(on_minority(), on_majority())
            return {"minority": mino, "majority": majo}

        seen = in_client(d, lambda: asyncio.run(during()))
    finally:
        d.net.heal()
    print("\nminority gateway (h5):", ", ".join(f"{m} {s} in {t:.2f}s" for m, s, t in seen["minority"]))
    print("majority gateway (h4):", ", ".join(f"{m} {s} in {t:.2f}s" for m, s, t in seen["majority"]))
    assert all(s == 503 for _, s, _ in seen["minority"]), seen["minority"]
    assert all(t < METADATA_TIMEOUT + SLACK for m, _, t in seen["minority"] if m == "GET"), seen["minority"]
    assert all(t < METADATA_TIMEOUT + STORAGE_STALL + SLACK for _, _, t in seen["minority"]), seen["minority"]
    # The majority elects (if m3 led) and serves: the second read and the last write and read work.
    assert seen["majority"][1][1] == 200, seen["majority"]
    assert [s for _, s, _ in seen["majority"][-2:]] == [200, 200], seen["majority"]
    in_client(d, lambda: asyncio.run(_until_serving(d)))


# --- upgrades: a rolling restart, host by host, as the README's upgrade procedure says ----------
def wait_caught_up(d: Deployment, timeout: float = 90.0) -> None:
    """What the README's procedure checks before the next host, with the code of the
    commands it names (run in-process from the client host): ``objstore metadata status``
    shows a leader and every member reachable and applied up to the leader's commit index as
    first seen; ``objstore status`` shows every storage node reachable."""
    addrs = [s.address for s in d.of_role("metadata")]

    async def caught_up(target: int | None) -> tuple[bool, int | None, str]:
        m = await collect_status(addrs, d.secret)
        leader = next((r for r in m["members"] if r.get("node_id") == m["leader"]), None)
        if leader is None:
            return False, target, "no leader"
        target = leader["commit_index"] if target is None else target
        nodes = (await collect(addrs, d.secret))["nodes"]
        done = (all(r["reachable"] and r["applied_index"] >= target for r in m["members"])
                and all(n["reachable"] for n in nodes))
        return done, target, json.dumps(m["members"])[:2000]

    deadline = time.monotonic() + timeout
    target: int | None = None
    while True:
        try:
            done, target, seen = in_client(d, lambda: asyncio.run(caught_up(target)))
        except Exception as exc:  # noqa: BLE001 - not answering yet is not caught up
            done, seen = False, repr(exc)
        if done:
            return
        assert time.monotonic() < deadline, f"the cluster did not catch up: {seen}"
        time.sleep(0.3)


def rolling_restart(d: Deployment, stop: threading.Event) -> list[str]:
    """Each host in turn: stop its services (gateway, storage, metadata), start them again
    from the same config (metadata, storage, gateway), wait until caught up."""
    events = []
    for host in SERVERS:
        services = [s for s in d.services if s.host == host]
        for s in sorted(services, key=lambda s: -ROLES.index(s.role)):
            d.stop_service(s)
            assert s.proc is not None and s.proc.returncode == 0, (s.name, s.proc and s.proc.returncode)
        events.append(f"{time.monotonic():.3f} stopped {host} ({', '.join(s.role for s in services)})")
        for s in sorted(services, key=lambda s: ROLES.index(s.role)):
            d.start_service(s)
        wait_caught_up(d)
        events.append(f"{time.monotonic():.3f} {host} back and caught up")
    return events


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_rolling_restart_under_the_workload_loses_nothing(cluster):
    run_workload(cluster, 77, lambda stop: rolling_restart(cluster, stop), "rolling restart of h1..h5",
                 "(rolling restart)")


# --- clock skew: gateways seconds apart --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_gateways_seconds_apart_keep_histories_linearizable(cluster):
    """gw4 runs 4 s ahead and gw5 4 s behind (the test-only --clock-offset, honoured with
    --enable-fault-injection): version ids and SigV4 time checks come from skewed clocks,
    yet the register history through both, under the nemesis, stays linearizable."""
    d = cluster
    offsets = {"h4": 4.0, "h5": -4.0}
    originals = {h: list(d.service("gateway", h).argv) for h in offsets}

    def restart_gateways(argv_of) -> None:
        for h in offsets:
            s = d.service("gateway", h)
            d.stop_service(s)
            s.argv = argv_of(h)
            d.start_service(s)
        d.wait_registered()

    restart_gateways(lambda h: originals[h] + ["--enable-fault-injection", "--clock-offset", str(offsets[h])])
    try:
        assert "clock runs +4.000 s off" in d.output(d.service("gateway", "h4"))
        run_seed(d, 4242, float(os.environ.get("HOSTS_SLOW_SECONDS", "40")) / 2, hold=(1.0, 3.0), gap=(0.5, 1.0))
    finally:
        restart_gateways(lambda h: originals[h])

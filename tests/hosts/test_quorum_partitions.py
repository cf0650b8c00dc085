"""The three read levels on five hosts under network faults, and redundancy after healing.

The cluster is the five-host example deployment (``ops/deploy/examples/five-hosts``:
metadata on h1-h3, a storage node sN on every host hN, gateways on h4 and h5; replica:3, so
a key's commit manifests live on its first three ring nodes, W = 2 and a quorum read asks
R = 2). Clients run on a host of their own that no fault touches.

- **Histories** (:func:`run_seed`): writers PUT and DELETE a few keys through both gateways
  at once (several writers per key), recording the commit index each acknowledged write
  reports; readers GET through both gateways at ``strong``, ``quorum`` and ``one``
  (``x-objstore-consistency``), while a seeded nemesis partitions, isolates a host, splits
  majority from minority, cuts one way, drops packets, limits bandwidth and pauses a
  process (SIGSTOP). Checked: the strong reads with every write are linearizable
  (:func:`tests.linearizability.check`); the quorum reads meet the quorum guarantee and the
  one reads return only written values (:mod:`tests.linearizability.quorum`); every body
  read is exactly the body of one written value (never torn or invented:
  :func:`~tests.linearizability.s3_register.value_of`). After healing, nothing stays below
  its policy: repair brings every object back to three copies by itself.
- **The minority gateway** (:func:`test_the_minority_gateway_serves_one_and_quorum_reads_from_the_copies_it_reaches`):
  split {h1, h5} from the rest; gw5 refuses strong reads and writes with 503
  ServiceUnavailable, serves ``one`` reads of every key with a manifest replica on s1 or s5
  and ``quorum`` reads of every key with two there (the right bytes), refuses the others
  with 503 ServiceUnavailable, and lists at ``one`` from m1; gw4 keeps writing (every key
  with two manifest replicas on its side; one with two on the minority side is 503). After
  healing, the objects gw4 wrote during the split reach three copies without operator action.

``HOSTS_QUORUM_SEEDS`` (default ``1``) and ``HOSTS_QUORUM_SECONDS`` (default 6) choose the
default run; the ``slow`` variant runs ``HOSTS_QUORUM_SLOW_SEEDS`` (``1-8``) of
``HOSTS_QUORUM_SLOW_SECONDS`` (30) with longer holds.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace

import aiohttp
import pytest
from yarl import URL

from gateway.auth.sign import encode_path, encode_query
from metadata.api.client import MetadataClient
from objstore.node.client import StorageClient
from objstore.ring import build_ring
from ops.cli.status import collect
from tests.harness.eventually import eventually
from tests.harness.hosts import rules
from tests.harness.hosts.deploy import ACCESS_KEY, CLIENT, SECRET_KEY, Deployment
from tests.harness.hosts.nemesis import KINDS, Player, plan
from tests.harness.hosts.netns import host_executor
from tests.linearizability import Op, check, save_failing_history
from tests.linearizability.nemesis import seeds_from_env
from tests.linearizability.quorum import check_one, check_quorum
from tests.linearizability.s3_register import S3Endpoint, S3Register, body_of, value_of
from tests.linearizability.s3_workload import at_level

pytestmark = pytest.mark.integration

SERVERS = ["h1", "h2", "h3", "h4", "h5"]
METADATA_HOSTS = ["h1", "h2", "h3"]
GATEWAY_HOSTS = ["h4", "h5"]
BUCKET = "levels"
LEVELS = ("strong", "quorum", "one")
WRITERS = 4
KEYS_PER_SEED = 3
N = 3  # replica:3: manifests on a key's first three ring nodes
R = 2  # a quorum read waits for two of them
REPAIR_BOUND = 180.0  # seconds after healing by which nothing may be below policy
_CODE = b"<Code>"


@pytest.fixture(scope="module")
def cluster(five_hosts: Deployment) -> Deployment:
    async def create() -> None:
        async with aiohttp.ClientSession() as session:
            await S3Register(session, gateways(five_hosts)[0], BUCKET).create_bucket()

    five_hosts.from_client(lambda: asyncio.run(create()))
    return five_hosts


def gateways(d: Deployment) -> list[S3Endpoint]:
    return [S3Endpoint(d.endpoint(h), ACCESS_KEY, SECRET_KEY) for h in GATEWAY_HOSTS]


def error_code(data: bytes) -> str:
    start = data.find(_CODE)
    return data[start + len(_CODE):data.find(b"<", start + 1)].decode(errors="replace") if start >= 0 else ""


def now() -> float:
    return time.monotonic()


@dataclass
class Record:
    """The history of one run, and what refused reads answered (level, code) -> count."""

    ops: list[Op] = field(default_factory=list)
    refused: Counter = field(default_factory=Counter)


async def write_once(reg: S3Register, client: int, key: str, value: str | None, out: Record) -> None:
    """PUT ``body_of(value)`` (DELETE for None), recorded with the commit index it reports:
    2xx acknowledged, 5xx/timeout/connection error unknown, any other answer a bug."""
    kind = "put" if value is not None else "delete"
    call = now()
    try:
        status, data, headers = await reg.request("PUT" if value is not None else "DELETE", f"/{BUCKET}/{key}",
                                                  body_of(value) if value is not None else b"")
    except (asyncio.TimeoutError, aiohttp.ClientError, OSError):
        out.ops.append(Op(client, kind, key, value, None, call, now(), None))
        return
    if status >= 500:
        out.ops.append(Op(client, kind, key, value, None, call, now(), None))
        return
    assert status < 300, f"{kind} {key} answered {status}: {data[:300]!r}"
    out.ops.append(Op(client, kind, key, value, int(headers["x-objstore-commit-index"]), call, now(), True))


async def read_once(reg: S3Register, client: int, key: str, level: str, out: Record) -> None:
    """GET at ``level``: recorded when it answered the body of a value (which must be whole)
    or NoSuchKey; a refusal (5xx) or timeout is counted, not recorded (it constrains nothing)."""
    call = now()
    try:
        status, data, headers = await reg.request("GET", f"/{BUCKET}/{key}",
                                                  headers={"x-objstore-consistency": level})
    except (asyncio.TimeoutError, aiohttp.ClientError, OSError):
        out.refused[(level, "timeout")] += 1
        return
    if status >= 500:
        out.refused[(level, error_code(data))] += 1
        return
    if status == 404 and error_code(data) == "NoSuchKey":
        value = None
    else:
        assert status == 200, f"GET {key} at {level} answered {status}: {data[:300]!r}"
        assert headers.get("x-objstore-consistency") == level, dict(headers)
        value = value_of(data)  # raises CorruptBody for bytes that are no written value's body
    out.ops.append(Op(client, "get", key, level, value, call, now(), True))


async def workload(d: Deployment, seed: int, stop: threading.Event, keys: list[str], out: Record) -> None:
    rng = random.Random(seed)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        regs = [S3Register(session, gw, BUCKET, request_timeout=8.0) for gw in gateways(d)]

        async def writer(n: int, wrng: random.Random) -> None:
            count = 0
            while not stop.is_set():
                count += 1
                value = None if wrng.random() < 0.1 else f"w{n}.{count}"
                await write_once(regs[n % len(regs)], n, wrng.choice(keys), value, out)
                await asyncio.sleep(wrng.uniform(0.0, 0.1))

        async def reader(n: int, level: str, rrng: random.Random) -> None:
            while not stop.is_set():
                before = len(out.ops)
                await read_once(regs[n % len(regs)], 100 + n, rrng.choice(keys), level, out)
                await asyncio.sleep(rrng.uniform(0.0, 0.05) if len(out.ops) > before else 0.1)

        readers = [(i, level) for i, level in enumerate(lv for lv in LEVELS for _ in regs)]
        await asyncio.gather(*(writer(n, random.Random(rng.random())) for n in range(WRITERS)),
                             *(reader(i, level, random.Random(rng.random())) for i, level in readers))


async def final_reads(d: Deployment, keys: list[str], out: Record) -> None:
    """After healing: one recorded read of every key at every level through each gateway."""
    async with aiohttp.ClientSession() as session:
        for g, gw in enumerate(gateways(d)):
            reg = S3Register(session, gw, BUCKET, request_timeout=15.0)
            for level in LEVELS:
                for key in keys:
                    await read_once(reg, 200 + g, key, level, out)


async def until_serving(d: Deployment, timeout: float = 60.0) -> None:
    """After healing: until a PUT and a strong GET succeed through every gateway."""
    deadline = now() + timeout
    async with aiohttp.ClientSession() as session:
        for gw in gateways(d):
            reg = S3Register(session, gw, BUCKET, request_timeout=5.0)
            while True:
                try:
                    await reg.put_bytes("probe", b"probe")
                    if await reg.get_bytes("probe") == b"probe":
                        break
                except Exception:  # noqa: BLE001 - 503s and timeouts while the cluster settles
                    pass
                assert now() < deadline, f"{gw.endpoint} not serving {timeout}s after healing"
                await asyncio.sleep(0.2)


def below_policy(d: Deployment) -> int | None:
    """``objects_below_policy`` as ``objstore status`` reports it (None: no answer)."""
    addrs = [s.address for s in d.of_role("metadata")]
    try:
        return d.from_client(lambda: asyncio.run(collect(addrs, d.secret)))["metadata"].get("objects_below_policy")
    except Exception:  # noqa: BLE001 - a metadata node not answering yet
        return None


def wait_full_redundancy(d: Deployment) -> float:
    """Until no object is below its policy (repair needs no operator); seconds taken."""
    t0 = now()
    seen: list[int | None] = []

    def full() -> bool:
        seen.append(below_policy(d))
        return seen[-1] == 0

    eventually(full, REPAIR_BOUND, 1.0,
               message=lambda: f"nothing below policy {REPAIR_BOUND:g}s after healing; seen {seen[-10:]}")
    return now() - t0


def pause_step(d: Deployment, rng: random.Random, stop: threading.Event, events: list[str]) -> None:
    """SIGSTOP one storage or metadata process for 1-2.5 s, then SIGCONT it."""
    victim = rng.choice(d.of_role("storage") + d.of_role("metadata"))
    hold = round(rng.uniform(1.0, 2.5), 3)
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGSTOP)
    events.append(f"{now():.3f} pause: SIGSTOP {victim.name} for {hold:.1f}s")
    try:
        stop.wait(hold)
    finally:
        victim.proc.send_signal(signal.SIGCONT)
        events.append(f"{now():.3f} SIGCONT {victim.name}")


def run_seed(d: Deployment, seed: int, seconds: float, hold: tuple[float, float], gap: tuple[float, float]) -> None:
    rng = random.Random(seed)
    steps = plan(random.Random(seed * 7919), seconds, SERVERS, METADATA_HOSTS, GATEWAY_HOSTS, hold, gap)
    pause_at = rng.randint(0, len(steps))
    keys = [f"s{seed}/k{i}" for i in range(KEYS_PER_SEED)]
    player = Player(d.net)
    pauses: list[str] = []
    out = Record()
    stop = threading.Event()
    t0 = now()
    with host_executor(d.net[CLIENT], 1) as pool:
        work = pool.submit(asyncio.run, workload(d, seed, stop, keys, out))
        try:
            player.play(steps[:pause_at], stop)
            pause_step(d, rng, stop, pauses)
            stop.wait(rng.uniform(*gap))
            player.play(steps[pause_at:], stop)
        finally:
            stop.set()
            d.net.heal()
        work.result()
    ran = now() - t0
    d.from_client(lambda: asyncio.run(until_serving(d)))
    d.from_client(lambda: asyncio.run(final_reads(d, keys, out)))
    history = out.ops
    strong = [replace(op, input=None) if op.kind == "get" else op for op in at_level(history, "strong")]
    linear = check(strong, timeout=120.0)
    quorum, one = check_quorum(at_level(history, "quorum")), check_one(at_level(history, "one"))
    writes = [op for op in history if op.kind != "get"]
    reads = Counter(op.input for op in history if op.kind == "get")
    events = sorted(player.events + pauses, key=lambda e: float(e.split()[0]))
    note = (f"seed {seed}: {len(history)} ops in {ran:.1f}s; writes {sum(bool(w.ok) for w in writes)} acknowledged, "
            f"{sum(w.ok is None for w in writes)} unknown; reads {dict(reads)}; refused {dict(out.refused)}\n"
            f"strong: {linear.verdict} in {linear.seconds:.2f}s\n{quorum.render()}\n{one.render()}\n  "
            + "\n  ".join(events))
    print("\n" + note)
    if not (linear.ok and quorum.ok and one.ok):
        path = save_failing_history(history, f"{note}\n{linear.describe()}")
        pytest.fail(f"{note}\n{linear.describe()}\nhistory: {path}\n"
                    f"reproduce: HOSTS_QUORUM_SEEDS={seed} python -m pytest {__file__} -k histories")
    assert set(player.injected) == set(KINDS) and pauses, (player.injected, pauses)
    # Not vacuous: writes were acknowledged, every level completed reads and read values (a
    # starved machine may keep the metadata group electing for much of a short run).
    assert sum(bool(w.ok) for w in writes) >= 5, note
    for level in LEVELS:
        done = [op for op in history if op.kind == "get" and op.input == level]
        assert len(done) >= 5 and any(op.output is not None for op in done), note
    took = wait_full_redundancy(d)
    print(f"nothing below policy {took:.1f}s after healing")


@pytest.mark.parametrize("seed", seeds_from_env("HOSTS_QUORUM_SEEDS", "1"))
def test_histories_at_every_level_under_network_faults_and_full_redundancy_after(cluster, seed):
    # Short holds: one fault of each kind and a paused process in about ten seconds.
    run_seed(cluster, seed, float(os.environ.get("HOSTS_QUORUM_SECONDS", "6")), hold=(0.8, 1.6), gap=(0.3, 0.6))


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds_from_env("HOSTS_QUORUM_SLOW_SEEDS", "1-8"))
def test_many_seeds_of_histories_at_every_level(cluster, seed):
    # Holds longer than the metadata and straggler timeouts: 503s, elections, handoffs.
    run_seed(cluster, 500 + seed, float(os.environ.get("HOSTS_QUORUM_SLOW_SECONDS", "30")), hold=(2.0, 6.0),
             gap=(0.5, 2.0))


# --- the minority side of a split ---------------------------------------------------------
# m1, s1, s5 and gateway gw5. Replicas are spread over zones a (s1, s4), b (s2, s5) and c
# (s3), so a key's manifest replicas include none, one or both of s1 and s5.
MINORITY = ["h1", "h5"]


def manifest_hosts(d: Deployment, keys: list[str]) -> dict[str, set[str]]:
    """The hosts of each key's manifest replicas: its first N ring nodes in the current map."""
    addrs = [s.address for s in d.of_role("metadata")]

    async def fetch():
        async with MetadataClient(addrs, d.secret) as meta:
            return await meta.get_cluster_map()

    cmap = d.from_client(lambda: asyncio.run(fetch()))
    ring = build_ring(cmap)
    host_of = {ip: h for h, ip in d.net.addresses.items()}
    node_host = {n.node_id: host_of[n.address.rsplit(":", 1)[0]] for n in cmap.nodes}
    return {k: {node_host[n] for n in ring.locate(BUCKET, k, N)} for k in keys}


def manifests_everywhere(d: Deployment, hosts: dict[str, set[str]]) -> bool:
    """Whether every key's manifest replicas all hold its manifest (the write waited for W)."""
    async def ask() -> bool:
        async with aiohttp.ClientSession() as session:
            storage = StorageClient(session, d.secret)
            for key, on in hosts.items():
                for h in on:
                    if not await storage.get_manifests(d.service("storage", h).address, BUCKET, key):
                        return False
            return True

    return d.from_client(lambda: asyncio.run(ask()))


def listed_by_every_metadata_member(d: Deployment, prefix: str, keys: list[str]) -> bool:
    """Whether every metadata member lists every key of ``keys`` from its own state (a follower
    learns of a commit with the leader's next message, so a LIST at ``one`` cut off from the
    leader answers what its member had applied)."""
    async def ask() -> bool:
        for member in d.of_role("metadata"):
            async with MetadataClient([member.address], d.secret) as meta:
                listed, _ = await meta.list_objects_local(BUCKET, prefix=prefix)
            if not set(keys) <= {o.key for o in listed.contents}:
                return False
        return True

    return d.from_client(lambda: asyncio.run(ask()))


async def answer(reg: S3Register, method: str, path: str, level: str = "", body: bytes = b"") -> tuple[int, str, bytes]:
    """(status, S3 error code, body) of one request; status -1 for a timeout."""
    headers = {"x-objstore-consistency": level} if level else None
    try:
        status, data, _ = await reg.request(method, path, body, headers)
    except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
        return -1, type(exc).__name__, b""
    return status, error_code(data) if status >= 300 else "", data


async def list_at_one(reg: S3Register, prefix: str) -> tuple[int, str, bytes]:
    """ListObjectsV2 of ``prefix`` at ``one``: (status, S3 error code, body); -1 for a timeout."""
    query = {"list-type": "2", "prefix": prefix}
    headers = reg.signer.sign("GET", reg.host, f"/{BUCKET}", query=query, headers={"x-objstore-consistency": "one"})
    url = URL(f"{reg.base}{encode_path('/' + BUCKET)}?{encode_query(query)}", encoded=True)
    try:
        async with reg.session.get(url, headers=headers, timeout=reg.timeout) as resp:
            status, data = resp.status, await resp.read()
    except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
        return -1, type(exc).__name__, b""
    return status, error_code(data) if status >= 300 else "", data


def test_the_minority_gateway_serves_one_and_quorum_reads_from_the_copies_it_reaches(cluster):
    """gw5 with {h1, h5} split from the rest: strong reads and writes 503; ``one`` answers
    every key with a manifest replica on s1 or s5, ``quorum`` every key with two there, the
    others 503; LIST at ``one`` answers; gw4 keeps writing every key with two manifest
    replicas on its side (a key with two on the minority side is 503 there too), and what it
    wrote during the split is back at three copies after healing without operator action."""
    d = cluster
    d.from_client(lambda: asyncio.run(until_serving(d)))
    candidates = [f"split/k{i}" for i in range(40)]
    fresh = [f"split/during/{i}" for i in range(40)]  # written during the split
    hosts = manifest_hosts(d, candidates + fresh)
    reach = {k: len(hosts[k] & set(MINORITY)) for k in candidates + fresh}
    keys = [k for n in (0, 1, 2) for k in [c for c in candidates if reach[c] == n][:2]]
    assert sorted(reach[k] for k in keys) == [0, 0, 1, 1, 2, 2], reach
    # The majority can promise a write to quorum readers only where it reaches W = 2 of the
    # key's manifest replicas; a key with two on the minority side takes no write on either side.
    during = [k for k in fresh if reach[k] <= 1][:6]
    blocked = next(k for k in fresh if reach[k] == 2)

    async def put_all() -> None:
        async with aiohttp.ClientSession() as session:
            reg = S3Register(session, gateways(d)[0], BUCKET)
            for k in keys:
                await reg.put_bytes(k, body_of(k))

    d.from_client(lambda: asyncio.run(put_all()))
    eventually(lambda: manifests_everywhere(d, {k: hosts[k] for k in keys}), 10, 0.2,
               message="every manifest replica to hold its key's manifest")
    eventually(lambda: listed_by_every_metadata_member(d, "split/k", keys), 10, 0.2,
               message="every metadata member to have applied the writes")
    d.net.apply(rules.split(SERVERS, MINORITY))
    try:
        async def split() -> dict:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                gw4, gw5 = (S3Register(session, gw, BUCKET, request_timeout=40.0) for gw in gateways(d))

                async def majority_write(key: str) -> tuple[int, str, bytes]:
                    # The majority may first elect (if m1 led): a few tries, as an S3 client retries.
                    for _ in range(10):
                        got = await answer(gw4, "PUT", f"/{BUCKET}/{key}", body=body_of(key))
                        if got[0] == 200:
                            break
                        await asyncio.sleep(1.0)
                    return got

                reads = [(k, level) for k in keys for level in LEVELS]
                # A metadata leader on the minority side (m1) keeps answering strong reads,
                # correctly, while its lease lasts (300 ms after the last heartbeat a quorum
                # acknowledged; no other leader can be elected before 550 ms): past it, the
                # minority must refuse them.
                await asyncio.sleep(1.0)
                got = await asyncio.gather(
                    *(answer(gw5, "GET", f"/{BUCKET}/{k}", level) for k, level in reads),
                    *(answer(gw5, "PUT", f"/{BUCKET}/split/minority/{i}", body=b"x" * 1000) for i in range(2)),
                    list_at_one(gw5, "split/k"),
                    *(majority_write(k) for k in during))
                # After the writes above: the majority has elected, if it had to.
                blocked_put = await answer(gw4, "PUT", f"/{BUCKET}/{blocked}", body=body_of(blocked))
                return {"reads": dict(zip(reads, got[:len(reads)])), "puts": got[len(reads):len(reads) + 2],
                        "list": got[len(reads) + 2], "majority": got[len(reads) + 3:], "blocked": blocked_put}

        seen = d.from_client(lambda: asyncio.run(split()))
        below_at_heal = below_policy(d)
    finally:
        d.net.heal()
    print("\nminority gateway (h5), reads by key (manifest replicas it reaches):")
    for (k, level), (status, code, _) in seen["reads"].items():
        print(f"  {k} ({reach[k]} reachable) {level}: {status} {code}")
    print("  PUTs:", [(s, c) for s, c, _ in seen["puts"]], " LIST at one:", seen["list"][:2],
          "\nmajority gateway (h4) PUTs:", [(s, c) for s, c, _ in seen["majority"]],
          f"and of {blocked} (both manifest replicas on the minority side): {seen['blocked'][:2]}",
          f"\nobjects below policy at healing: {below_at_heal}")
    refused = (503, "ServiceUnavailable")
    for (k, level), (status, code, body) in seen["reads"].items():
        serves = {"strong": False, "quorum": reach[k] >= R, "one": reach[k] >= 1}[level]
        if serves:
            assert (status, body) == (200, body_of(k)), (k, level, status, code)
        else:
            assert (status, code) == refused, (k, level, status, code)
    assert all((s, c) == refused for s, c, _ in seen["puts"]), seen["puts"]
    status, _, listing = seen["list"]
    assert status == 200 and all(f"<Key>{k}</Key>".encode() in listing for k in keys), seen["list"]
    assert all(s == 200 for s, _, _ in seen["majority"]), seen["majority"]
    assert seen["blocked"][:2] == refused, seen["blocked"]  # committed, but not promised: unknown to the client

    d.from_client(lambda: asyncio.run(until_serving(d)))
    took = wait_full_redundancy(d)
    print(f"nothing below policy {took:.1f}s after healing")

    async def read_back() -> list[str]:
        bad = []
        async with aiohttp.ClientSession() as session:
            for gw in gateways(d):
                reg = S3Register(session, gw, BUCKET, request_timeout=15.0)
                for k in during:
                    for level in ("strong", "quorum"):
                        status, code, body = await answer(reg, "GET", f"/{BUCKET}/{k}", level)
                        if (status, body) != (200, body_of(k)):
                            bad.append(f"{k} at {level} via {gw.endpoint}: {status} {code}")
        return bad

    assert d.from_client(lambda: asyncio.run(read_back())) == []

"""Linearizability of the Raft-replicated metadata service under faults, on real processes.

A 3-member metadata group (fault injection on) serves concurrent clients, each its own
MetadataClient with short deadlines, running a random register workload on a few object
keys (:mod:`tests.linearizability.workload`) while a seeded nemesis kills, pauses and
partitions members (:mod:`tests.linearizability.nemesis`). Afterwards everything is
healed, every key is read once more, and the whole history must be linearizable.

The checker is shown to catch a broken read path of the real system: the test-only
``X-Objstore-Debug-Stale-Read`` switch makes a node answer from its local state, and an
isolated old leader answers a value the majority has already overwritten.

Environment: ``LIN_SEEDS`` (default ``1``: seeds as a list ``3,7`` or a range ``1-10``),
``LIN_SECONDS`` (default 14: seconds of workload per seed, faults held 0.8-1.6 s: every kind
once in about twelve seconds on an idle machine; longer, up to four times, where restarts are
slow, until three faults of both families were injected), ``LIN_CLIENTS`` (default 6); the ``slow`` test runs
``LIN_SLOW_SEEDS`` (default ``1-5``) of ``LIN_SLOW_SECONDS`` (20) each, faults held 0.8-3 s.
A failing seed prints its history file and the line that reproduces it.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from metadata.app import create_app
from metadata.api.client import MetadataClient
from objstore import internal_auth
from objstore.config import MetadataConfig
from tests.integration.test_metadata_raft_harness import (
    SECRET,
    RaftGroup,
    free_port,
    group_fixture,
)
from tests.linearizability import (
    NOT_LINEARIZABLE,
    Recorder,
    check,
    save_failing_history,
)
from tests.linearizability.nemesis import (
    seeds_from_env,
    KINDS,
    PARTITIONS,
    PROCESS_FAULTS,
    Nemesis,
    plan,
)
from tests.linearizability.workload import (
    STALE_READ_HEADER,
    ClientRegister,
    ClientState,
    Tally,
    choose,
    classify,
    perform,
    run_client,
    stale_get,
)

pytestmark = pytest.mark.integration

BUCKET = "lin"
KEYS_PER_RUN = 4
_RUNS = itertools.count(1)  # runs share the module's group and bucket: each has keys of its own
CHECK_TIMEOUT = 120.0
DEADLINES = (0.6, 1.0, 2.0)  # seconds a client tries before it calls the outcome unknown
# Operations with a definite outcome a run must record to be worth checking. A run has about
# 1000 on an idle machine and 230 at a load of 20 on two cores.
MIN_DEFINITE_OUTCOMES = 100
MAX_STRETCH = 4  # a run lasts at most this many times its planned seconds (see run_seed)


def _seeds() -> list[int]:
    return seeds_from_env("LIN_SEEDS", "1")


SECONDS = float(os.environ.get("LIN_SECONDS", "14"))
SLOW_SECONDS = float(os.environ.get("LIN_SLOW_SECONDS", "20"))
CLIENTS = int(os.environ.get("LIN_CLIENTS", "6"))


group = group_fixture("raft-lin")


@pytest.fixture(scope="module")
def bucket(group: RaftGroup) -> str:
    async def create() -> None:
        await group.leader(timeout=15)
        async with group.client(deadline=20) as c:
            await c.create_bucket(BUCKET, "lin", "replica:3", time.time())

    asyncio.run(create())
    return BUCKET


def _client(group: RaftGroup, name: str, members=None, deadline: float = 2.0) -> MetadataClient:
    return MetadataClient(group.addresses(members), SECRET, client_id=name, deadline=deadline,
                          attempt_timeout=min(1.0, deadline))


async def _final_reads(group: RaftGroup, recorder: Recorder, keys: list[str], number: int) -> None:
    """After healing: one more read of every key through a leader (recorded)."""
    async with _client(group, f"final-{number}", deadline=15) as c:
        reg, state = ClientRegister(c, BUCKET), ClientState(number, random.Random(number))
        for key in keys:
            await perform(recorder, reg, state, "get", key, None)


def _report(seed: int, seconds: float, ops, text: str, events: list[str]) -> str:
    note = f"seed {seed}\n{text}\nnemesis:\n" + "\n".join(events)
    path = save_failing_history(ops, note)
    return (f"seed {seed}: {text}\nhistory: {path}\nnemesis:\n" + "\n".join(events[-30:]) +
            f"\nreproduce: LIN_SEEDS={seed} LIN_SECONDS={seconds:g} python -m pytest -q {__file__}")


@pytest.mark.parametrize("seed", _seeds())
async def test_metadata_history_under_kills_pauses_and_partitions_is_linearizable(group, bucket, seed):
    await run_seed(group, bucket, seed, SECONDS, hold=(0.8, 1.6), gap=(0.3, 0.6))


@pytest.mark.parametrize("seed", _seeds())
async def test_clients_sharing_one_metadata_client_stay_linearizable_under_faults(group, bucket, seed):
    """The workload's clients share one MetadataClient, so their reads (and commands) are
    coalesced into batch calls: a read issued after a write was acknowledged must still
    never see an older state, through leader changes, pauses and partitions."""
    await run_seed(group, bucket, seed, SECONDS, hold=(0.8, 1.6), gap=(0.3, 0.6), shared=True)


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds_from_env("LIN_SLOW_SEEDS", "1-5"))
async def test_many_seeds_of_kills_pauses_and_partitions(group, bucket, seed):
    await run_seed(group, bucket, seed, SLOW_SECONDS)


async def run_seed(group: RaftGroup, bucket: str, seed: int, seconds: float, hold: tuple[float, float] = (0.8, 3.0),
                   gap: tuple[float, float] = (0.3, 1.5), shared: bool = False) -> None:
    """``seconds`` of the workload under the seed's faults (each held ``hold`` seconds, then
    ``gap`` without faults); fails unless the history is linearizable and work of every
    kind got done. ``shared``: the clients share one MetadataClient (its lookups and
    commands coalesced) instead of one each."""
    rng = random.Random(seed)
    # Keys no earlier run on this group wrote: each history starts from absent keys.
    run = next(_RUNS)
    keys = [f"r{run}-s{seed}-k{i}" for i in range(KEYS_PER_RUN)]
    recorder = Recorder(classify=classify)
    nemesis = Nemesis(group, random.Random(rng.random()))
    faults = plan(random.Random(rng.random()), seconds, hold, gap)
    stop = asyncio.Event()
    # Deadlines from 0.6 s to 2 s: the impatient clients see more unknown outcomes.
    clients = [_client(group, f"lin-{seed}-{i}", deadline=rng.choice(DEADLINES)) for i in range(CLIENTS)]
    if shared:
        clients = [clients[0]] * CLIENTS
    tasks = [asyncio.create_task(run_client(recorder, ClientRegister(c, bucket),
                                            ClientState(i, random.Random(rng.random())), keys, stop))
             for i, c in enumerate(clients)]
    chaos = asyncio.create_task(nemesis.run(faults, stop))
    t0 = time.monotonic()
    try:
        await asyncio.wait([chaos, *tasks], timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
        # Restarting a killed member takes seconds on a loaded machine (its hold ends only once
        # it listens again): the run goes on, up to MAX_STRETCH times its length, until the
        # faults it must cover were injected and the last of them held its time.
        covered_at = None
        while not any(t.done() for t in (chaos, *tasks)) and time.monotonic() - t0 < MAX_STRETCH * seconds:
            if covered_at is None and _covers(nemesis.injected, faults):
                covered_at = time.monotonic()
            if covered_at is not None and time.monotonic() - covered_at >= hold[1]:
                break
            await asyncio.wait([chaos, *tasks], timeout=0.1, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        await chaos                       # heals everything on its way out
        await asyncio.gather(*tasks)      # each client finishes its current op (by its deadline)
    finally:
        stop.set()
        await asyncio.gather(chaos, *tasks, return_exceptions=True)
        for c in set(clients):
            await c.close()
        await nemesis.heal_all()
    workload_seconds = time.monotonic() - t0
    await group.leader(timeout=15)
    await group.wait_converged(timeout=30)
    await _final_reads(group, recorder, keys, CLIENTS)
    ops = recorder.history()
    result = check(ops, timeout=CHECK_TIMEOUT)
    tally = Tally.of(ops)
    print(f"\nseed {seed}: {len(ops)} ops in {workload_seconds:.1f}s ({tally.describe()}); faults "
          f"{', '.join(nemesis.injected)}; check {result.verdict} in {result.seconds:.2f}s\n  " +
          "\n  ".join(nemesis.events))
    assert result.ok, _report(seed, seconds, ops, result.describe(), nemesis.events)
    # Live: once healed, the group answers a read of every key.
    final = [o for o in ops if o.client == CLIENTS]
    assert len(final) == len(keys) and all(o.ok is True for o in final), final
    # Not vacuous: real work got done, values were read back, conditions both held and
    # failed, and faults of both families were injected. Counts, not rates: how many
    # operations fit in the run measures the machine's load, not the service.
    assert tally.ok + tally.failed >= MIN_DEFINITE_OUTCOMES, tally.describe()
    assert tally.reads_of_values >= 20 and tally.writes_ok >= 20, tally.describe()
    assert tally.cas_ok >= 3 and tally.cas_failed >= 3, tally.describe()
    assert len(nemesis.injected) >= min(3, len(faults)), nemesis.events
    assert set(PROCESS_FAULTS) & set(nemesis.injected) and set(PARTITIONS) & set(nemesis.injected), nemesis.events


def _covers(injected: list[str], faults: list) -> bool:
    """Whether the faults injected so far are as many and as varied as a run must have."""
    kinds = set(injected)
    return len(injected) >= min(3, len(faults)) and bool(kinds & set(PROCESS_FAULTS)) and bool(kinds & set(PARTITIONS))


async def test_stale_reads_from_an_isolated_old_leader_are_caught_by_the_checker(group, bucket):
    """Isolate the leader, overwrite a key through the majority, then read it from the old
    leader: through ReadIndex it refuses (the history stays linearizable); through the
    stale-read switch it answers the overwritten value, and the checker rejects that key."""
    key, others_keys = "stale-k", ["stale-bg0", "stale-bg1"]
    recorder = Recorder(classify=classify)
    old = await group.leader()
    term = (await group.status(old))["term"]
    majority = [m for m in group.members.values() if m is not old]
    stop = asyncio.Event()
    background = [_client(group, f"stale-bg-{i}") for i in range(3)]
    tasks = [asyncio.create_task(run_client(recorder, ClientRegister(c, bucket), ClientState(10 + i, random.Random(i)),
                                            others_keys, stop))
             for i, c in enumerate(background)]
    try:
        async with _client(group, "stale-writer", deadline=10) as c, aiohttp.ClientSession() as http:
            writer = ClientState(0, random.Random(0))
            await perform(recorder, ClientRegister(c, bucket), writer, "put", key, "before")
            await group.wait_converged()
            await group.isolate(old)
            try:
                await group.leader(majority, min_term=term)
                async with _client(group, "stale-majority", majority, deadline=10) as cm:
                    await perform(recorder, ClientRegister(cm, bucket), writer, "put", key, "after")
                    await perform(recorder, ClientRegister(cm, bucket), writer, "get", key, None)
                # The old leader through the ReadIndex path: refused (unknown outcome).
                async with _client(group, "stale-old-strong", [old], deadline=1.5) as co:
                    reader = ClientState(1, random.Random(1))
                    await perform(recorder, ClientRegister(co, bucket), reader, "get", key, None)
                strong_only = recorder.history()
                # The old leader through the broken path: the overwritten value.
                with recorder.op(2, "get", key) as op:
                    op.output = await stale_get(http, old.address, SECRET, bucket, key)
            finally:
                await group.heal()
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for c in background:
            await c.close()
    await group.wait_converged()
    refused = [o for o in strong_only if o.client == 1]
    assert len(refused) == 1 and refused[0].ok is None, refused
    assert [o.output for o in strong_only if o.key == key and o.kind == "get" and o.ok] == ["after"]
    assert check(strong_only).ok, check(strong_only).describe()
    ops = recorder.history()
    stale = [o for o in ops if o.client == 2]
    assert [o.output for o in stale] == ["before"]
    result = check(ops)
    print("\n" + result.describe())
    assert result.verdict == NOT_LINEARIZABLE
    assert result.failure is not None and result.failure.key == key
    assert result.failure.explanation is not None and result.failure.explanation.stuck.client == 2
    assert sum(o.ok is True and o.key in others_keys for o in ops) >= 5  # the other keys were busy too
    # Healed and caught up, the same node's local state has the new value.
    async with aiohttp.ClientSession() as http:
        assert await stale_get(http, old.address, SECRET, bucket, key) == "after"


lease_group = group_fixture("raft-lease", extra=("--lease-reads",))


@pytest.mark.parametrize("pause", [2.5])
async def test_a_leader_paused_past_its_lease_answers_no_stale_read_when_it_resumes(lease_group, pause):
    """Lease reads under a clock pause: the leader, holding a fresh lease, is stopped
    (SIGSTOP: its loop counts no ticks meanwhile) with a read waiting in its socket; the
    others elect a leader and overwrite the key; when it continues, its ticks say the lease
    still holds, the clock says it ran out long ago. The read must not answer the
    overwritten value (it follows the new leader, or fails), and the history stays
    linearizable."""
    g, key = lease_group, "paused-k"
    recorder = Recorder(classify=classify)
    old = await g.leader(timeout=15)
    async with g.client(deadline=20) as c:
        await c.create_bucket("lease", "lin", "replica:3", time.time())
    term = (await g.status(old))["term"]
    majority = [m for m in g.members.values() if m is not old]
    writer = ClientState(0, random.Random(0))
    async with _client(g, "lease-writer", deadline=10) as c:
        await perform(recorder, ClientRegister(c, "lease"), writer, "put", key, "before")
    await g.wait_converged()
    reader_client = MetadataClient(g.addresses([old]), SECRET, client_id="lease-reader", deadline=15,
                                   attempt_timeout=10)
    try:
        reader, reg = ClientState(1, random.Random(1)), ClientRegister(reader_client, "lease")
        for _ in range(3):  # reads through the old leader: its lease is warm and in use
            await perform(recorder, reg, reader, "get", key, None)
        assert old.proc is not None
        old.proc.send_signal(signal.SIGSTOP)
        try:
            read = asyncio.create_task(perform(recorder, reg, reader, "get", key, None))
            await asyncio.sleep(0.1)
            await g.leader(majority, min_term=term, timeout=pause + 10)
            async with _client(g, "lease-majority", majority, deadline=10) as cm:
                await perform(recorder, ClientRegister(cm, "lease"), writer, "put", key, "after")
            await asyncio.sleep(max(0.0, pause - 1.5))
        finally:
            old.proc.send_signal(signal.SIGCONT)
        await read
    finally:
        await reader_client.close()
    await g.wait_converged()
    ops = recorder.history()
    last = [o for o in ops if o.client == 1][-1]
    assert last.output != "before" or last.ok is not True, ops
    result = check(ops)
    assert result.ok, result.describe()


async def _get_object(client: TestClient, stale: bool) -> int:
    path = f"/v1/object?bucket={BUCKET}&key=k"
    extra = {STALE_READ_HEADER: "1"} if stale else None
    headers = internal_auth.headers(SECRET, "GET", path, target=f"{client.host}:{client.port}", extra=extra)
    resp = await client.get(path, headers=headers)
    await resp.read()
    return resp.status


@pytest.mark.parametrize("fault_injection", [True, False])
async def test_the_stale_read_switch_needs_fault_injection(tmp_path: Path, fault_injection: bool):
    """A member with no leader (its peers never answer): a strong read is refused with 503;
    with the switch it answers from its own (empty) state, NoSuchBucket, but only on a node
    with fault injection on; elsewhere the header changes nothing."""
    peers = tuple(f"m{i}=127.0.0.1:{free_port()}" for i in (1, 2, 3))
    cfg = MetadataConfig("m1", str(tmp_path), SECRET, peers=peers, enable_fault_injection=fault_injection)
    async with TestClient(TestServer(create_app(cfg))) as client:
        assert await _get_object(client, stale=False) == 503
        assert await _get_object(client, stale=True) == (404 if fault_injection else 503)


# --- the pure parts: the fault plan and the operation choice ----------------------------------
def test_a_fault_plan_is_a_function_of_its_seed_and_covers_every_kind():
    for seed in range(50):
        faults = plan(random.Random(seed), 20)
        assert faults == plan(random.Random(seed), 20)
        assert {f.kind for f in faults[:2]} & set(PROCESS_FAULTS) and {f.kind for f in faults[:2]} & set(PARTITIONS)
        assert {f.kind for f in faults[:6]} == set(KINDS)
        assert sum(f.hold + f.gap for f in faults) >= 20 > sum(f.hold + f.gap for f in faults[:-1])
        assert all(0.8 <= f.hold <= 3.0 and 0.3 <= f.gap <= 1.5 and f.target in ("leader", "random") for f in faults)
    assert plan(random.Random(1), 20) != plan(random.Random(2), 20)


def test_every_write_writes_a_fresh_value_and_a_cas_expects_what_its_client_last_saw():
    state = ClientState(3, random.Random(7))
    written: list[str] = []
    for _ in range(500):
        kind, key, inp = choose(state, ["a", "b"])
        assert key in ("a", "b")
        if kind == "put":
            written.append(inp)
            state.known[key] = inp
        elif kind == "cas":
            assert inp[0] == state.known.get(key)
            written.append(inp[1])
            state.known[key] = inp[1]
        else:
            assert inp is None
            if kind == "delete":
                state.known[key] = None
    assert len(written) == len(set(written)) and all(v.startswith("c3.") for v in written)
    assert {choose(ClientState(0, random.Random(s)), ["a"])[0] for s in range(100)} == {"get", "put", "cas", "delete"}

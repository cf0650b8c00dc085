"""The linearizability checker, the register model and the history recorder.

Hand-written histories with known verdicts, agreement with a brute-force check of the
definition on tiny random histories, seeded synthetic histories (linearizable by
construction, then with one injected stale read), a performance run, and an in-process
replicated register whose follower reads the checker must catch.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import random
import time

import pytest

from objstore.errors import NoSuchKey, NotLeader, PreconditionFailed
from tests.linearizability import (
    CAS_OK, LINEARIZABLE, NO_EFFECT, NOT_LINEARIZABLE, PRECONDITION_FAILED, TIMEOUT, Op, Outcome, Recorder,
    assert_linearizable, check, default_classify, load_history, register_model,
)
from tests.linearizability.history import dumps_history, loads_history
from tests.linearizability.model import register_step
from tests.linearizability.synthetic import (
    brute_force_linearizable, inject_stale_read, random_small_history, register_history,
)


def op(client: int, kind: str, inp, out, call: float, ret: float | None, ok: bool | None = True,
       key: str = "k") -> Op:
    return Op(client, kind, key, inp, out, call, ret, ok)


def put(c, v, call, ret, ok=True, key="k"):
    return op(c, "put", v, None, call, ret, ok, key)


def get(c, v, call, ret, key="k"):
    return op(c, "get", None, v, call, ret, True, key)


def cas(c, expected, new, out, call, ret, key="k"):
    if out is None:
        return op(c, "cas", (expected, new), None, call, ret, None, key)
    return op(c, "cas", (expected, new), out, call, ret, out == CAS_OK, key)


def delete(c, call, ret, ok=True):
    return op(c, "delete", None, None, call, ret, ok)


def pending_put(c, v, call):
    return op(c, "put", v, None, call, None, None)


# --- hand-written histories ---------------------------------------------------------------
def test_sequential_history_is_linearizable():
    h = [put(0, "a", 0, 1), get(1, "a", 2, 3), put(0, "b", 4, 5), get(1, "b", 6, 7), delete(0, 8, 9),
         get(1, None, 10, 11)]
    assert check(h).ok


def test_read_concurrent_with_a_write_may_see_either_value():
    base = [put(0, "a", 0, 1), put(1, "b", 2, 6)]
    assert check([*base, get(2, "a", 3, 4)]).ok
    assert check([*base, get(2, "b", 3, 4)]).ok


def test_stale_read_after_a_completed_write_is_caught_and_explained():
    stale = get(2, "a", 4, 5)
    result = check([put(0, "a", 0, 1), put(1, "b", 2, 3), stale])
    assert result.verdict == NOT_LINEARIZABLE
    explanation = result.failure.explanation
    assert explanation.key == "k"
    assert explanation.stuck == stale
    assert stale in explanation.could_not_place
    assert [o.input for o in explanation.prefix] == ["a", "b"]
    assert explanation.state == "b"
    assert "c2 get() -> 'a'" in result.describe()


def test_reads_seeing_two_writes_in_opposite_orders():
    writes = [put(0, "a", 0, 10), put(1, "b", 0, 10)]
    c2 = [get(2, "a", 1, 2), get(2, "b", 3, 4)]
    c3 = [get(3, "b", 1, 2), get(3, "a", 3, 4)]
    assert check([*writes, *c2]).ok
    assert check([*writes, *c3]).ok
    assert check([*writes, *c2, *c3]).verdict == NOT_LINEARIZABLE


def test_a_cas_that_succeeded_twice():
    base = [put(0, "a", 0, 1)]
    assert check([*base, cas(1, "a", "b", CAS_OK, 2, 4), cas(2, "a", "c", PRECONDITION_FAILED, 2, 4)]).ok
    assert check([*base, cas(1, "a", "b", CAS_OK, 2, 4),
                  cas(2, "a", "c", CAS_OK, 2, 4)]).verdict == NOT_LINEARIZABLE


def test_create_only_cas():
    assert check([cas(0, None, "x", CAS_OK, 0, 2), cas(1, None, "y", PRECONDITION_FAILED, 0, 2),
                  get(2, "x", 3, 4)]).ok
    assert check([cas(0, None, "x", CAS_OK, 0, 2), cas(1, None, "y", CAS_OK, 0, 2)]).verdict == NOT_LINEARIZABLE
    # A failed create-only cas needs the key to exist at some point in its interval.
    assert check([cas(1, None, "y", PRECONDITION_FAILED, 0, 1)]).verdict == NOT_LINEARIZABLE


def test_cas_compares_etags_through_etag_of():
    model = register_model(etag_of=lambda value: value.upper())
    assert check([put(0, "a", 0, 1), cas(1, "A", "b", CAS_OK, 2, 3), get(2, "b", 4, 5)], model).ok
    assert check([put(0, "a", 0, 1), cas(1, "a", "b", CAS_OK, 2, 3)], model).verdict == NOT_LINEARIZABLE


def test_lost_acknowledged_write():
    assert check([put(0, "a", 0, 1), put(1, "b", 2, 3), get(2, "a", 4, 5)]).verdict == NOT_LINEARIZABLE
    assert check([put(0, "a", 0, 1), get(1, None, 2, 3)]).verdict == NOT_LINEARIZABLE


def test_deleted_value_does_not_come_back():
    assert check([put(0, "a", 0, 1), delete(1, 2, 3), get(2, None, 4, 5)]).ok
    assert check([put(0, "a", 0, 1), delete(1, 2, 3), get(2, "a", 4, 5)]).verdict == NOT_LINEARIZABLE


def test_pending_write_may_or_may_not_be_visible():
    base = [put(0, "a", 0, 1), pending_put(1, "b", 2)]
    assert check([*base, get(2, "b", 3, 4)]).ok                         # it took effect
    assert check([*base, get(2, "a", 3, 4)]).ok                         # it never did
    assert check([*base, get(2, "a", 3, 4), get(2, "b", 50, 51)]).ok    # it took effect late
    # Once seen, it cannot be unseen; and it cannot be seen before it was sent.
    assert check([*base, get(2, "b", 3, 4), get(2, "a", 5, 6)]).verdict == NOT_LINEARIZABLE
    assert check([get(2, "b", 0, 1), pending_put(1, "b", 2)]).verdict == NOT_LINEARIZABLE


def test_pending_write_can_explain_a_failed_cas():
    h = [put(0, "a", 0, 1), cas(2, "a", "c", PRECONDITION_FAILED, 3, 4)]
    assert check(h).verdict == NOT_LINEARIZABLE
    assert check([*h, pending_put(1, "b", 2)]).ok
    # ...but not one that ended before the pending write was sent.
    assert check([*h, pending_put(1, "b", 5)]).verdict == NOT_LINEARIZABLE


def test_pending_cas_applies_only_if_its_precondition_held():
    base = [put(0, "a", 0, 1), cas(1, "a", "b", None, 2, None)]
    assert check([*base, get(2, "b", 3, 4)]).ok
    assert check([put(0, "a", 0, 1), cas(1, "z", "b", None, 2, None),
                  get(2, "b", 3, 4)]).verdict == NOT_LINEARIZABLE


def test_failed_writes_and_unanswered_reads_are_no_ops():
    h = [put(0, "a", 0, 1), put(1, "b", 2, 3, ok=False), op(2, "get", None, None, 2, None, None),
         get(3, "a", 4, 5)]
    assert check(h).ok


def test_keys_are_checked_independently():
    h = [put(0, "a", 0, 1, key="x"), put(1, "a", 0, 1, key="y"), put(0, "b", 2, 3, key="x"),
         get(2, "b", 4, 5, key="x"), get(2, "a", 4, 5, key="y")]
    result = check(h)
    assert result.ok and {k.key for k in result.keys} == {"x", "y"}
    bad = check([*h, get(3, "a", 6, 7, key="x")])
    assert bad.verdict == NOT_LINEARIZABLE and bad.failure.key == "x"


def test_malformed_ops_are_rejected():
    with pytest.raises(ValueError):
        check([put(0, "a", 2, 1)])
    with pytest.raises(ValueError):
        check([op(0, "increment", 1, None, 0, 1)])
    with pytest.raises(ValueError):
        check([op(0, "cas", ("a", "b"), "maybe", 0, 1)])


def test_search_past_its_deadline_reports_timeout():
    history = register_history(random.Random(7), 1500, 8, 1)
    times = itertools.chain([0.0], itertools.repeat(100.0))
    result = check(history, timeout=1.0, clock=lambda: next(times))
    assert result.verdict == TIMEOUT and result.timed_out and not result.ok


# --- the definition, by brute force ----------------------------------------------------------
@pytest.mark.parametrize("values", [("a", "b"), ("a", "b", "c", "d", "e", "f")])
def test_agrees_with_brute_force_on_tiny_random_histories(values):
    verdicts = {True: 0, False: 0}
    for seed in range(400):
        rng = random.Random(seed)
        history = random_small_history(rng, rng.randint(1, 7), values)
        expected = brute_force_linearizable(history, register_step)
        assert check(history).ok == expected, f"seed {seed}:\n" + "\n".join(o.describe() for o in history)
        verdicts[expected] += 1
    assert min(verdicts.values()) > 20   # both outcomes well represented


# --- synthetic histories ----------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_correct_register_histories_are_linearizable_and_one_stale_read_is_caught(seed):
    rng = random.Random(seed)
    history = register_history(rng, 400, clients=rng.choice((3, 5, 8)), keys=rng.choice((1, 2, 4)),
                               p_pending=0.03)
    assert_linearizable(history, timeout=60)
    injected = inject_stale_read(history, rng)
    assert injected is not None
    broken, original, stale = injected
    result = check(broken, timeout=60)
    assert result.verdict == NOT_LINEARIZABLE, result.describe()
    assert result.failure.key == stale.key


@pytest.mark.timeout(120)
@pytest.mark.parametrize("keys,clients", [(10, 8), (2, 20)])
def test_five_thousand_ops_check_in_seconds(keys, clients, capsys):
    """Measured, not asserted: (10 keys, 8 clients) is the nemesis-test shape; (2 keys, 20
    clients) keeps about ten ops in flight on every key."""
    history = register_history(random.Random(2024), 5000, clients=clients, keys=keys, p_pending=0.01)
    start = time.perf_counter()
    result = check(history, timeout=100)
    elapsed = time.perf_counter() - start
    broken, _, _ = inject_stale_read(history, random.Random(2025))
    start = time.perf_counter()
    bad = check(broken, timeout=100)
    elapsed_bad = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n5000 ops / {keys} keys / {clients} clients: linearizable in {elapsed:.3f}s "
              f"({sum(k.explored for k in result.keys)} configurations); one stale read caught in "
              f"{elapsed_bad:.3f}s ({sum(k.explored for k in bad.keys)} configurations)")
    assert result.ok
    assert bad.verdict == NOT_LINEARIZABLE


# --- history files ----------------------------------------------------------------------------
def test_history_round_trips_through_json(tmp_path):
    h = [put(0, "a", 0.5, 1.25), cas(1, "a", "b", CAS_OK, 2, 3), cas(2, None, "c", None, 2.5, None),
         get(3, None, 4, 5), cas(4, "z", "d", PRECONDITION_FAILED, 6, 7)]
    assert loads_history(dumps_history(h)) == h
    with pytest.raises(ValueError):
        loads_history(json.dumps({"format": "something-else", "version": 1, "ops": []}))


def test_a_failing_history_is_saved_and_its_path_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OBJSTORE_HISTORY_DIR", str(tmp_path))
    h = [put(0, "a", 0, 1), put(1, "b", 2, 3), get(2, "a", 4, 5)]
    with pytest.raises(AssertionError) as excinfo:
        assert_linearizable(h)
    saved = list(tmp_path.glob("history-*.json"))
    assert len(saved) == 1
    assert str(saved[0]) in capsys.readouterr().out
    assert str(saved[0]) in str(excinfo.value)
    assert load_history(saved[0]) == h
    assert "not_linearizable" in json.loads(saved[0].read_text())["note"]


# --- the recorder -----------------------------------------------------------------------------
def fake_clock():
    ticks = itertools.count()
    return lambda: float(next(ticks))


class Refused(Exception):
    """A refusal that the system under test guarantees had no effect."""


def classify(kind: str, exc: BaseException) -> Outcome | None:
    return NO_EFFECT if isinstance(exc, Refused) else default_classify(kind, exc)


async def test_recorder_times_and_classifies_outcomes():
    rec = Recorder(clock=fake_clock(), classify=classify)

    async def failing(exc):
        await asyncio.sleep(0)
        raise exc

    with rec.op(0, "put", "k", "a"):
        await asyncio.sleep(0)
    with rec.op(1, "get", "k") as o:
        o.output = "a"
    with rec.op(2, "cas", "k", ("b", "c")):
        await failing(PreconditionFailed())
    with rec.op(3, "get", "k"):
        await failing(NoSuchKey())
    with rec.op(4, "put", "k", "d"):
        await failing(Refused())
    with rec.op(5, "put", "k", "e"):
        await failing(asyncio.TimeoutError())
    with rec.op(6, "cas", "k", ("x", "y")) as o:
        o.fail(PRECONDITION_FAILED)
    with rec.op(7, "put", "k", "f"):
        await failing(NotLeader())       # may have been proposed before leadership was lost

    by_client = {o.client: o for o in rec.history()}
    assert by_client[0] == Op(0, "put", "k", "a", None, 0.0, 1.0, True)
    assert by_client[1].output == "a" and by_client[1].ok is True
    assert (by_client[2].ok, by_client[2].output) == (False, PRECONDITION_FAILED)
    assert (by_client[3].ok, by_client[3].output) == (True, None)
    assert 4 not in by_client                       # refused with no effect: dropped
    assert (by_client[5].ok, by_client[5].output) == (None, None)
    assert (by_client[6].ok, by_client[6].output) == (False, PRECONDITION_FAILED)
    assert by_client[7].ok is None
    # An exception that is not an outcome of the request (a bug in the test) propagates.
    with pytest.raises(ZeroDivisionError):
        with rec.op(8, "get", "k") as o:
            o.output = 1 / 0
    assert rec.history()[-1].client == 8 and rec.history()[-1].ok is None
    assert [o.call for o in rec.history()] == sorted(o.call for o in rec.history())


async def test_recorder_marks_cancelled_and_unfinished_ops_unknown():
    rec = Recorder(clock=fake_clock())
    started = asyncio.Event()
    never = asyncio.Event()

    async def client(n: int) -> None:
        with rec.op(n, "put", "k", f"v{n}"):
            started.set()
            await never.wait()

    task = asyncio.create_task(client(0))
    await started.wait()
    open_op = rec.op(1, "put", "k", "w")
    open_op.__enter__()                              # still in flight when the history is taken
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    history = {o.client: o for o in rec.history()}
    assert history[0].ok is None and history[0].ret is not None
    assert history[1].ok is None and history[1].ret is None
    assert len(rec) == 2


# --- a broken replicated register, caught -----------------------------------------------------
class ReplicatedRegister:
    """A leader and two followers holding one register per key. A write is applied at the
    leader, replicated in order to each follower by its own task after random delays, and
    acknowledged once one follower has it too (a majority). ``read_from_followers`` serves
    reads from a random replica, which may be lagging: the deliberate bug."""

    def __init__(self, rng: random.Random, read_from_followers: bool) -> None:
        self.rng = rng
        self.read_from_followers = read_from_followers
        self.log: list[tuple[str, object]] = []
        self.leader: dict[str, object] = {}
        self.followers: list[dict[str, object]] = [{}, {}]
        self.applied = [0, 0]
        self.progress = asyncio.Condition()
        self.stopping = False

    async def pause(self, most: int) -> None:
        for _ in range(self.rng.randrange(most + 1)):
            await asyncio.sleep(0)

    async def replicate(self, f: int, slowness: int) -> None:
        while not self.stopping:
            if self.applied[f] < len(self.log):
                key, value = self.log[self.applied[f]]
                await self.pause(slowness)
                self._apply(self.followers[f], key, value)
                self.applied[f] += 1
                async with self.progress:
                    self.progress.notify_all()
            else:
                await asyncio.sleep(0)

    @staticmethod
    def _apply(state: dict, key: str, value: object) -> None:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value

    async def _commit(self, key: str, value: object) -> None:
        self._apply(self.leader, key, value)
        self.log.append((key, value))
        index = len(self.log)
        async with self.progress:
            await self.progress.wait_for(lambda: max(self.applied) >= index)

    async def put(self, key: str, value: str) -> None:
        await self.pause(3)
        await self._commit(key, value)

    async def cas(self, key: str, expected: str | None, value: str) -> str:
        await self.pause(3)
        if self.leader.get(key) != expected:
            raise PreconditionFailed()
        await self._commit(key, value)
        return CAS_OK

    async def get(self, key: str) -> object:
        await self.pause(3)
        replicas = [self.leader, *self.followers] if self.read_from_followers else [self.leader]
        value = self.rng.choice(replicas).get(key)
        await self.pause(3)
        return value


async def drive(seed: int, read_from_followers: bool, clients: int = 5, ops_per_client: int = 40) -> list[Op]:
    rng = random.Random(seed)
    register = ReplicatedRegister(rng, read_from_followers)
    rec = Recorder(clock=fake_clock())
    replicators = [asyncio.create_task(register.replicate(0, 2)), asyncio.create_task(register.replicate(1, 12))]
    serial = itertools.count()

    async def client(c: int) -> None:
        seen: dict[str, object] = {}
        for _ in range(ops_per_client):
            key = rng.choice(("x", "y"))
            r = rng.random()
            if r < 0.5:
                with rec.op(c, "get", key) as o:
                    o.output = seen[key] = await register.get(key)
            elif r < 0.85:
                value = f"v{next(serial)}"
                with rec.op(c, "put", key, value):
                    await register.put(key, value)
            else:
                value = f"v{next(serial)}"
                expected = seen.get(key)
                with rec.op(c, "cas", key, (expected, value)) as o:
                    o.output = await register.cas(key, expected, value)   # type: ignore[arg-type]
            await register.pause(4)

    await asyncio.gather(*(client(c) for c in range(clients)))
    register.stopping = True
    await asyncio.gather(*replicators)
    return rec.history()


async def test_checker_catches_reads_from_a_lagging_follower():
    assert await drive(1, read_from_followers=True) == await drive(1, read_from_followers=True)  # seeded
    for seed in range(3):
        good = await drive(seed, read_from_followers=False)
        assert check(good).verdict == LINEARIZABLE
        bad = await drive(seed, read_from_followers=True)
        result = check(bad)
        assert result.verdict == NOT_LINEARIZABLE, result.describe()
        stuck = result.failure.explanation.stuck
        assert stuck.kind == "get"

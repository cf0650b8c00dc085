"""A linearizability checker: Wing & Gong's search with Lowe's memoization, per key.

The history is split by ``model.partition`` (the key): a history of independent keys is
linearizable iff each key's sub-history is (P-compositionality, Horn & Kroening), so each
key is searched on its own, in order, stopping at the first that fails.

The search (after Porcupine's ``checkSingle``): one key's call and return entries sorted
by time in a doubly linked list. A configuration is (the set of linearized ops, the model
state); its candidates are the call entries before the first return entry still in the
list, i.e. the ops that may come next. Depth first, linearize a candidate the model
accepts (lifting its entries out of the list); when no candidate is left, backtrack. A
configuration explored before is not explored again (Lowe): a bitset of linearized ops
and the state.

Reductions, none of which changes a verdict:
- Read-only ops go first, without branching. If op X never changes the state and is a
  legal candidate in configuration C, then C has a completion iff C+X has one: in any
  completion of C, moving X to the front keeps every op legal (X leaves the state as it
  found it) and respects real time (X is a candidate). So C+X failing fails C.
- Subsumption over pending ops: an explored configuration with the same state, the same
  completed ops and fewer pending ops linearized has every completion of this one.
- The model's :class:`~tests.linearizability.spec.Analysis`: equivalent states merged;
  a pending op tried only right before an op that could observe it.
- Order (a heuristic, for speed only): writes needed soonest are tried first.

Unknown outcomes: a pending op has a call entry and no return entry (its return is
+infinity), so nothing is ever forced to come after it and it may be linearized at any
point after its call; the search succeeds as soon as every *completed* op is linearized,
so "never took effect" is the same as leaving it out.

Invariants: pure and deterministic for a given history (no IO apart from the clock read
against ``timeout``); operations with equal times count as concurrent (calls sort before
returns); a search past its deadline reports ``TIMEOUT`` rather than an answer.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

from tests.linearizability.history import Op, save_failing_history
from tests.linearizability.model import REGISTER
from tests.linearizability.spec import Analysis, Model

LINEARIZABLE = "linearizable"
NOT_LINEARIZABLE = "not_linearizable"
TIMEOUT = "timeout"
SKIPPED = "skipped"          # a key not searched: an earlier key failed or timed out

_CHECK_CLOCK_EVERY = 2048
_SHOWN_PREFIX = 8


@dataclass(frozen=True)
class Explanation:
    """Why one key is not linearizable: the longest linearizable prefix the search found,
    the state after it, the completed op whose return came before it could be placed
    (``stuck``), the ops that could have come next, and those the model rejects there."""

    key: Hashable
    prefix: tuple[Op, ...]
    state: Any
    stuck: Op
    candidates: tuple[Op, ...]
    could_not_place: tuple[Op, ...]

    def render(self, describe_state: Callable[[Any], str] = repr) -> str:
        lines = [f"key {self.key!r}: longest linearizable prefix has {len(self.prefix)} ops"]
        if len(self.prefix) > _SHOWN_PREFIX:
            lines.append(f"  ... {len(self.prefix) - _SHOWN_PREFIX} earlier ops")
        lines += [f"  {op.describe()}" for op in self.prefix[-_SHOWN_PREFIX:]]
        lines.append(f"state after prefix: {describe_state(self.state)}")
        lines.append(f"must be placed before its return but cannot: {self.stuck.describe()}")
        lines.append("could come next but the model rejects them in that state:")
        lines += [f"  {op.describe()}" for op in self.could_not_place] or ["  (none: every choice fails later)"]
        return "\n".join(lines)


@dataclass(frozen=True)
class KeyResult:
    """One key: its verdict, how many ops were searched and configurations explored."""

    key: Hashable
    verdict: str
    ops: int
    explored: int
    seconds: float
    explanation: Explanation | None = None


@dataclass(frozen=True)
class CheckResult:
    """``verdict`` is LINEARIZABLE, NOT_LINEARIZABLE or TIMEOUT (no answer in time)."""

    verdict: str
    keys: tuple[KeyResult, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.verdict == LINEARIZABLE

    @property
    def timed_out(self) -> bool:
        return self.verdict == TIMEOUT

    @property
    def failure(self) -> KeyResult | None:
        return next((k for k in self.keys if k.verdict == NOT_LINEARIZABLE), None)

    def describe(self, describe_state: Callable[[Any], str] = repr) -> str:
        total = sum(k.ops for k in self.keys)
        head = f"{self.verdict}: {total} ops over {len(self.keys)} keys in {self.seconds:.3f}s"
        failure = self.failure
        if failure is not None and failure.explanation is not None:
            return head + "\n" + failure.explanation.render(describe_state)
        if self.timed_out:
            unfinished = [repr(k.key) for k in self.keys if k.verdict == TIMEOUT]
            return head + f"\nno answer in time for keys: {', '.join(unfinished)}"
        return head


def check(ops: Sequence[Op], model: Model = REGISTER, *, timeout: float = 30.0,
          clock: Callable[[], float] = time.monotonic) -> CheckResult:
    """Check ``ops`` against ``model``, key by key, stopping at the first key that is not
    linearizable. Raises ValueError for a malformed op (see :func:`validate`)."""
    start = clock()
    deadline = start + timeout
    partitions: dict[Hashable, list[Op]] = {}
    for op in ops:
        validate(op, model)
        if not model.droppable(op):
            partitions.setdefault(model.partition(op), []).append(op)
    results: list[KeyResult] = []
    verdict = LINEARIZABLE
    for key, key_ops in partitions.items():
        if verdict != LINEARIZABLE:
            results.append(KeyResult(key, SKIPPED, len(key_ops), 0, 0.0))
            continue
        result = _check_key(key, key_ops, model, deadline, clock)
        results.append(result)
        if result.verdict != LINEARIZABLE:
            verdict = result.verdict
    return CheckResult(verdict, tuple(results), clock() - start)


def assert_linearizable(ops: Sequence[Op], model: Model = REGISTER, *, timeout: float = 30.0) -> CheckResult:
    """Check and, unless linearizable, save the history to a file (path printed) and raise
    AssertionError with the explanation. A timeout fails too: it proves nothing."""
    result = check(ops, model, timeout=timeout)
    if not result.ok:
        text = result.describe(model.describe_state)
        path = save_failing_history(ops, text)
        raise AssertionError(f"{text}\nhistory: {path}")
    return result


def validate(op: Op, model: Model) -> None:
    """A completed op needs ``call <= ret``; raises ValueError otherwise or if the model does."""
    if op.ok is not None:
        if op.ret is None:
            raise ValueError(f"completed op without a return time: {op}")
        if op.ret < op.call:
            raise ValueError(f"op returns before it is called: {op}")
    model.validate(op)


def _entries(ops: Sequence[Op]) -> list[tuple[int, int]]:
    """(op index, 0 call | 1 return) sorted by time, calls before returns at equal times.

    Within a run of consecutive calls (no return between them) the order carries no
    meaning, only the order in which the search tries them: earliest return first, pending
    ops last (an op that must be placed soonest is tried first)."""
    inf = float("inf")
    events = [(op.call, 0, i) for i, op in enumerate(ops)]
    events += [(op.ret, 1, i) for i, op in enumerate(ops) if op.ok is not None]
    events.sort()
    out: list[tuple[int, int]] = []
    run: list[int] = []

    def flush() -> None:
        run.sort(key=lambda j: (inf if ops[j].ok is None else ops[j].ret, j))
        out.extend((j, 0) for j in run)
        run.clear()

    for _, kind, i in events:
        if kind == 0:
            run.append(i)
        else:
            flush()
            out.append((i, 1))
    flush()
    return out


def _check_key(key: Hashable, ops: Sequence[Op], model: Model, deadline: float,
               clock: Callable[[], float]) -> KeyResult:
    start = clock()
    entries = _entries(ops)
    size = len(entries) + 1                     # node 0 is the head sentinel; -1 is the end
    op_of = [-1] + [i for i, _ in entries]
    is_call = [False] + [kind == 0 for _, kind in entries]
    ret_node = [-1] * len(ops)                  # op index -> its return node, -1 if pending
    for n in range(1, size):
        if not is_call[n]:
            ret_node[op_of[n]] = n
    nxt = list(range(1, size)) + [-1]
    prv = [-1] + list(range(size - 1))
    bits = [1 << i for i in range(len(ops))]
    read_only = [model.read_only(op) for op in ops]
    step = model.step
    analysis = model.analyze(ops) if model.analyze is not None else Analysis()
    canon = analysis.canon
    # For a pending op: the ops that could observe it (-1: always tried).
    watchers = [analysis.observers.get(i, -1) if op.ok is None else -1 for i, op in enumerate(ops)]
    # Mutating candidates are tried in the order they are needed: by their own return or
    # the earliest return of an op that reads what they write (pending ops have none).
    urgency = [size if r == -1 else r for r in ret_node]
    for i, readers in analysis.readers.items():
        for j in readers:
            if ret_node[j] != -1 and ret_node[j] < urgency[i]:
                urgency[i] = ret_node[j]

    state: Any = model.init(key)
    linearized = 0
    remaining = sum(1 for op in ops if op.ok is not None)
    memo = _Memo(sum(bits[i] for i, op in enumerate(ops) if op.ok is None))
    visit = memo.visit
    # One frame per configuration on the current path: [candidates to try (None for a
    # greedy read-only move), next index, state in that configuration, node of the move
    # taken from it (-1 while none)].
    frames: list[list[Any]] = []
    best: tuple[list[int], Any, int] = ([], state, -1)
    fresh = True                                # the current configuration is new
    steps = 0
    while True:
        if fresh:
            if not remaining:
                return KeyResult(key, LINEARIZABLE, len(ops), memo.size, clock() - start)
            steps += 1
            if steps % _CHECK_CLOCK_EVERY == 0 and clock() > deadline:
                return KeyResult(key, TIMEOUT, len(ops), memo.size, clock() - start)
            fresh = False
            # Candidates: the calls before the first return in the list.
            mutating: list[int] = []
            optional: list[int] = []                # pending ops with known observers
            here = 0                                # the candidates, as a bitset
            greedy = -1
            n = nxt[0]
            while n != -1 and is_call[n]:
                i = op_of[n]
                if read_only[i]:
                    if step(state, ops[i])[0]:
                        greedy = n
                        break
                    here |= bits[i]
                elif watchers[i] == -1:
                    mutating.append(n)
                    here |= bits[i]
                else:
                    optional.append(n)
                    here |= bits[i]
                n = nxt[n]
            # A pending op is only worth placing right before an op that observes it.
            for n in optional:
                if watchers[op_of[n]] & here:
                    mutating.append(n)
            if greedy == -1:
                mutating.sort(key=lambda m: urgency[op_of[m]])
                frames.append([mutating, 0, state, -1])
            else:
                # A legal read-only candidate is linearized at once, without branching: if
                # the configuration it leads to fails, so does this one (module docstring).
                i = op_of[greedy]
                new_linearized = linearized | bits[i]
                new_state = state if canon is None else canon(state, new_linearized)
                if visit(new_linearized, new_state):
                    frames.append([None, 0, state, greedy])
                    state, linearized = new_state, new_linearized
                    _lift(greedy, ret_node[i], nxt, prv)
                    if ret_node[i] != -1:
                        remaining -= 1
                    fresh = True
                    continue
                # It leads to an explored, hence failed, configuration: so does this one.
                if len(frames) > len(best[0]) or best[2] == -1:
                    best = _best(frames, op_of, state, nxt, is_call)
        # Advance the innermost configuration to its next untried move, or backtrack.
        while frames:
            frame = frames[-1]
            taken = frame[3]
            if taken != -1:
                i = op_of[taken]
                _unlift(taken, ret_node[i], nxt, prv)
                if ret_node[i] != -1:
                    remaining += 1
                linearized ^= bits[i]
                state = frame[2]
                frame[3] = -1
            candidates = frame[0]
            if candidates is not None:
                pos = frame[1]
                while pos < len(candidates):
                    node = candidates[pos]
                    pos += 1
                    i = op_of[node]
                    legal, new_state = step(state, ops[i])
                    if not legal:
                        continue
                    new_linearized = linearized | bits[i]
                    if canon is not None:
                        new_state = canon(new_state, new_linearized)
                    if not visit(new_linearized, new_state):
                        continue
                    frame[1], frame[3] = pos, node
                    state, linearized = new_state, new_linearized
                    _lift(node, ret_node[i], nxt, prv)
                    if ret_node[i] != -1:
                        remaining -= 1
                    fresh = True
                    break
                if fresh:
                    break
                frame[1] = pos
            # Every move from this configuration fails: so does the configuration.
            if len(frames) - 1 > len(best[0]) or best[2] == -1:
                best = _best(frames[:-1], op_of, state, nxt, is_call)
            frames.pop()
        if not fresh:
            break
    return KeyResult(key, NOT_LINEARIZABLE, len(ops), memo.size, clock() - start,
                     _explain(key, ops, model, entries, best))


class _Memo:
    """The configurations already explored (Lowe's memoization), with subsumption over
    pending ops: a configuration is also skipped when an explored one had the same state,
    the same completed ops and a subset of its pending ops linearized, since every
    completion of it is a completion of that one (pending ops may stay unlinearized)."""

    __slots__ = ("pending", "seen", "by_completed", "size")

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.seen: set[tuple[int, Any]] = set()
        self.by_completed: dict[tuple[int, Any], list[int]] = {}
        self.size = 0

    def visit(self, linearized: int, state: Any) -> bool:
        """Record a configuration; False if it (or one subsuming it) was explored."""
        if not self.pending:
            key = (linearized, state)
            if key in self.seen:
                return False
            self.seen.add(key)
            self.size += 1
            return True
        done_pending = linearized & self.pending
        key = (linearized ^ done_pending, state)
        explored = self.by_completed.get(key)
        if explored is None:
            self.by_completed[key] = [done_pending]
        else:
            for other in explored:
                if other & done_pending == other:
                    return False
            explored.append(done_pending)
        self.size += 1
        return True


def _lift(call: int, ret: int, nxt: list[int], prv: list[int]) -> None:
    """Unlink a call node and its return node (``-1`` for a pending op)."""
    nxt[prv[call]] = nxt[call]
    if nxt[call] != -1:
        prv[nxt[call]] = prv[call]
    if ret != -1:
        nxt[prv[ret]] = nxt[ret]
        if nxt[ret] != -1:
            prv[nxt[ret]] = prv[ret]


def _unlift(call: int, ret: int, nxt: list[int], prv: list[int]) -> None:
    """Relink what :func:`_lift` unlinked (dancing links: in reverse order)."""
    if ret != -1:
        nxt[prv[ret]] = ret
        if nxt[ret] != -1:
            prv[nxt[ret]] = ret
    nxt[prv[call]] = call
    if nxt[call] != -1:
        prv[nxt[call]] = call


def _best(frames: list[list[Any]], op_of: list[int], state: Any, nxt: list[int],
          is_call: list[bool]) -> tuple[list[int], Any, int]:
    """The path to the current configuration, its state and its first unplaced return."""
    n = nxt[0]
    while n != -1 and is_call[n]:
        n = nxt[n]
    return [op_of[f[3]] for f in frames], state, (op_of[n] if n != -1 else -1)


def _explain(key: Hashable, ops: Sequence[Op], model: Model, entries: list[tuple[int, int]],
             best: tuple[list[int], Any, int]) -> Explanation:
    prefix, _, stuck = best
    # Replay the prefix for the real state (the search may hold an equivalent stand-in).
    state = model.init(key)
    for i in prefix:
        state = model.step(state, ops[i])[1]
    placed = set(prefix)
    candidates: list[int] = []
    for i, kind in entries:
        if kind == 1 and i == stuck:
            break
        if kind == 0 and i not in placed:
            candidates.append(i)
    rejected = [i for i in candidates if not model.step(state, ops[i])[0]]
    return Explanation(key, tuple(ops[i] for i in prefix), state, ops[stuck],
                       tuple(ops[i] for i in candidates), tuple(ops[i] for i in rejected))

"""Search reductions for the register model (see :class:`tests.linearizability.spec.Analysis`).

Written values are assumed to identify their write only where that is stated; every
reduction below is an over-approximation in the safe direction (it may keep work the
search did not need, never drop work it needed).

Unobservable values: a value that no remaining op can observe (no remaining read returns
it, no remaining cas expects its ETag) behaves like any other such value for the rest of
the search, so all of them become the one state :data:`UNOBSERVABLE`.

Observers of a pending write W of ``v`` (``None`` for a delete). Take a linearization that
places W; the ops after W up to the next state change all see ``v``. If none of them
depends on seeing ``v`` rather than the state ``t`` before W, W can be removed (and so can
any pending cas that failed there, having had no effect). The ones that can depend on it:
- a read returning ``v``, a cas expecting ``v`` (its ETag; ``None`` = absence for a
  delete), which need ``v`` itself;
- a failed cas F that ``v`` makes fail, but that ``t`` could have let succeed: some write of
  a value with F's expected ETag (or an absence: the initial state, a delete) could still
  be current when F runs, i.e. it was called before F returned and no completed write
  called after it returned had returned before F was called.
Those ops commute with each other (they all leave ``v`` in place), so one of them can come
first, right after W.
"""
from __future__ import annotations

import bisect
from typing import Any, Callable, Sequence

from tests.linearizability.history import CAS_OK, PRECONDITION_FAILED, Op
from tests.linearizability.spec import Analysis, State


class _Unobservable:
    """The state "some value that no remaining op can observe"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<a value no remaining op observes>"


UNOBSERVABLE = _Unobservable()
_INF = float("inf")


def written(op: Op) -> tuple[bool, Any]:
    """(whether ``op`` may change the state, the value it writes: None for a delete)."""
    if op.ok is False:
        return False, None
    if op.kind == "put":
        return True, op.input
    if op.kind == "delete":
        return True, None
    if op.kind == "cas" and (op.ok is None or op.output == CAS_OK):
        return True, op.input[1]
    return False, None


def _failed_cas(op: Op) -> bool:
    return op.kind == "cas" and op.ok is not None and op.output == PRECONDITION_FAILED


class _Overwrites:
    """When a state left by a completed write is definitely gone: the earliest return of a
    completed write (optionally: a present-value write only) called after it returned."""

    def __init__(self, ops: Sequence[Op], present_only: bool) -> None:
        changes = sorted((op.call, op.ret) for op in ops
                         if op.ok is True and written(op)[0] and not (present_only and op.kind == "delete"))
        self.calls = [c for c, _ in changes]
        self.suffix_min = [_INF] * (len(changes) + 1)
        for k in range(len(changes) - 1, -1, -1):
            self.suffix_min[k] = min(changes[k][1], self.suffix_min[k + 1])  # type: ignore[type-var]

    def gone_by(self, since: float) -> float:
        return self.suffix_min[bisect.bisect_right(self.calls, since)]


def analyze_register(ops: Sequence[Op], etag_of: Callable[[Any], Any], initial: Any = None) -> Analysis:
    """The :class:`Analysis` of one key's ops for the register model."""
    reads: dict[Any, list[int]] = {}
    cas_by_expected: dict[Any, list[int]] = {}
    value_sources: dict[Any, list[int]] = {}     # etag -> ops that may write it
    absence_sources: list[int] = []              # deletes
    watchers_by_value: dict[Any, int] = {}
    watchers_by_etag: dict[Any, int] = {}
    for i, op in enumerate(ops):
        if op.kind == "get" and op.ok is True:
            reads.setdefault(op.output, []).append(i)
            if op.output is not None:
                watchers_by_value[op.output] = watchers_by_value.get(op.output, 0) | (1 << i)
        elif op.kind == "cas":
            expected = op.input[0]
            cas_by_expected.setdefault(expected, []).append(i)
            if expected is not None:
                watchers_by_etag[expected] = watchers_by_etag.get(expected, 0) | (1 << i)
        writes, value = written(op)
        if writes:
            if value is None:
                absence_sources.append(i)
            else:
                value_sources.setdefault(etag_of(value), []).append(i)

    def canon(state: State, linearized: int) -> State:
        if state is None or state is UNOBSERVABLE:
            return state
        watchers = watchers_by_value.get(state, 0) | watchers_by_etag.get(etag_of(state), 0)
        return UNOBSERVABLE if watchers & linearized == watchers else state

    any_gone = _Overwrites(ops, present_only=False)
    present_gone = _Overwrites(ops, present_only=True)

    def may_be_current(source: int, f: Op) -> bool:
        src = ops[source]
        if src.call > f.ret:  # type: ignore[operator]
            return False
        if src.ok is None:
            return True
        gone = present_gone if src.kind == "delete" else any_gone
        return gone.gone_by(src.ret) >= f.call  # type: ignore[arg-type]

    def could_succeed(f: Op) -> bool:
        expected = f.input[0]
        if expected is not None:
            if initial is not None and etag_of(initial) == expected and any_gone.gone_by(-_INF) >= f.call:
                return True
            return any(may_be_current(s, f) for s in value_sources.get(expected, ()))
        if initial is None and present_gone.gone_by(-_INF) >= f.call:
            return True
        return any(may_be_current(s, f) for s in absence_sources)

    helped = [(i, op) for i, op in enumerate(ops) if _failed_cas(op) and could_succeed(op)]

    observers: dict[int, int] = {}
    readers: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        writes, value = written(op)
        if not writes:
            continue
        expected = None if value is None else etag_of(value)
        direct = [j for j in (*reads.get(value, ()), *cas_by_expected.get(expected, ()))
                  if j != i and (ops[j].ok is None or ops[j].ret >= op.call)]  # type: ignore[operator]
        readers[i] = direct
        if op.ok is None:
            mask = 0
            for j in direct:
                mask |= 1 << j
            for j, f in helped:
                fails_here = f.input[0] is not None if value is None else f.input[0] != expected
                if fails_here and f.ret >= op.call:  # type: ignore[operator]
                    mask |= 1 << j
            observers[i] = mask
    return Analysis(canon=canon, observers=observers, readers=readers)

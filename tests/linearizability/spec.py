"""The interface between the checker and a sequential specification.

A :class:`Model` is a set of pure functions over an immutable, hashable state:
``step(state, op) -> (legal, new_state)`` says whether ``op`` with its recorded output was a
possible result in ``state`` if it took effect at that point, and what the state became.
States must be hashable (the checker memoizes (linearized set, state) pairs) and compare
by value. Everything else is optional help for the search, and must never change a
verdict: each hook documents the property it promises.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable, Mapping, Sequence

from tests.linearizability.history import Op

State = Hashable
Step = Callable[[State, Op], "tuple[bool, State]"]


@dataclass(frozen=True)
class Analysis:
    """Reductions for one partition ``ops`` (bit i of a linearized set is ``ops[i]``).

    ``canon(state, linearized)`` maps a state to one that every op not yet linearized
    treats identically, so that equivalent configurations share one memo entry.

    ``observers[i]``, for a pending op ``i`` (unknown outcome), is the set (bitset) of ops
    that can depend on it having taken effect. Promise: if some linearization places op
    ``i``, then one exists where it is dropped or immediately followed by one of these.
    The checker therefore tries op ``i`` only where one of them could come next (and never
    if there are none). Pending ops without an entry are tried everywhere.

    ``readers[i]``, for an op ``i`` that changes the state, lists the ops that read what it
    wrote: a hint only (the search tries first the writes that are needed soonest).
    """

    canon: Callable[[State, int], State] | None = None
    observers: Mapping[int, int] = field(default_factory=dict)
    readers: Mapping[int, Sequence[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    """A sequential specification, partitioned per key (P-compositionality).

    ``init(key)``: the state of a key before the history. ``partition(op)``: the key.
    ``droppable(op)``: the op can neither be illegal nor change the state (removed before
    checking). ``read_only(op)``: the op never changes the state in any state where it is
    legal (the checker linearizes those greedily, without branching). ``validate(op)``
    raises ValueError for an op the model cannot interpret. ``analyze(ops)``: an
    :class:`Analysis` of one partition before its search.
    """

    name: str
    step: Step
    init: Callable[[Hashable], State] = lambda key: None
    partition: Callable[[Op], Hashable] = lambda op: op.key
    droppable: Callable[[Op], bool] = lambda op: False
    read_only: Callable[[Op], bool] = lambda op: False
    describe_state: Callable[[State], str] = repr
    validate: Callable[[Op], None] = lambda op: None
    analyze: Callable[[Sequence[Op]], Analysis] | None = None

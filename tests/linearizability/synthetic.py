"""Seeded synthetic histories for testing the checker: correct by construction, or with one
known anomaly injected.

:func:`register_history` simulates clients issuing overlapping operations against an
atomic register per key: each operation gets a random interval and a linearization point
inside it (an unknown-outcome operation: a point anywhere after its call, or none), and
outputs are computed by applying the operations in linearization-point order. The result
is linearizable by construction. Written values are unique, so a value identifies the
write that produced it (and is its own ETag).

:func:`inject_stale_read` rewrites one read to return a value that was definitely
overwritten before the read began, which no linearization can explain.

:func:`random_small_history` and :func:`brute_force_linearizable` cross-check the checker
(and its search reductions) against the definition on tiny histories.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import replace
from typing import Any, Callable, Sequence

from tests.linearizability.history import CAS_OK, PRECONDITION_FAILED, Op


def register_history(rng: random.Random, n_ops: int, clients: int, keys: int, *,
                     p_pending: float = 0.0, p_cas: float = 0.1, p_delete: float = 0.05,
                     p_read: float = 0.5) -> list[Op]:
    """``n_ops`` operations by ``clients`` concurrent clients over ``keys`` keys."""
    planned: list[dict[str, Any]] = []
    per_client = [n_ops // clients + (1 if c < n_ops % clients else 0) for c in range(clients)]
    last_seen: dict[tuple[int, str], Any] = {}
    serial = 0
    for client in range(clients):
        t = rng.uniform(0.0, 0.5)
        for _ in range(per_client[client]):
            key = f"k{rng.randrange(keys)}"
            call = t
            ret = call + rng.uniform(0.05, 1.0)
            pending = rng.random() < p_pending
            r = rng.random()
            serial += 1
            if r < p_read:
                kind, inp = "get", None
            elif r < p_read + p_cas:
                expected = last_seen.get((client, key)) if rng.random() < 0.7 else f"v-stale-{serial}"
                kind, inp = "cas", (expected, f"v{serial}")
            elif r < p_read + p_cas + p_delete:
                kind, inp = "delete", None
            else:
                kind, inp = "put", f"v{serial}"
            if pending:
                # It may take effect at any point after its call (even after the client gave
                # up on it), or never.
                point = call + rng.uniform(0.0, 3.0) if rng.random() < 0.6 else None
            else:
                point = rng.uniform(call, ret)
            planned.append(dict(client=client, kind=kind, key=key, input=inp, call=call, ret=ret,
                                pending=pending, point=point))
            if kind == "put":
                last_seen[(client, key)] = inp
            t = ret + rng.uniform(0.0, 0.1)
    # Apply in linearization-point order to compute outputs.
    values: dict[str, Any] = {}
    outputs: dict[int, tuple[Any, bool]] = {}
    order = sorted((p["point"], i) for i, p in enumerate(planned) if p["point"] is not None)
    for _, i in order:
        p = planned[i]
        key, current = p["key"], values.get(p["key"])
        if p["kind"] == "get":
            outputs[i] = (current, True)
        elif p["kind"] == "put":
            values[key] = p["input"]
            outputs[i] = (None, True)
        elif p["kind"] == "delete":
            values.pop(key, None)
            outputs[i] = (None, True)
        else:
            expected, new = p["input"]
            holds = current is None if expected is None else current == expected
            if holds:
                values[key] = new
            outputs[i] = (CAS_OK, True) if holds else (PRECONDITION_FAILED, False)
    ops = []
    for i, p in enumerate(planned):
        if p["pending"]:
            ops.append(Op(p["client"], p["kind"], p["key"], p["input"], None, p["call"], p["ret"], None))
        else:
            output, ok = outputs[i]
            ops.append(Op(p["client"], p["kind"], p["key"], p["input"], output, p["call"], p["ret"], ok))
    return sorted(ops, key=lambda o: o.call)


def inject_stale_read(ops: list[Op], rng: random.Random) -> tuple[list[Op], Op, Op] | None:
    """Rewrite one completed read to return a value whose write W1 was followed by another
    completed write W2 (W1 returned before W2 was called) that returned before the read was
    called. Returns (new history, original read, stale read), or None if no read qualifies.
    Requires unique written values (as :func:`register_history` makes)."""
    def writes(o: Op) -> bool:
        return o.ok is True and (o.kind in ("put", "delete") or (o.kind == "cas" and o.output == CAS_OK))

    def written(o: Op) -> Any:
        return o.input if o.kind == "put" else (None if o.kind == "delete" else o.input[1])

    reads = [i for i, o in enumerate(ops) if o.kind == "get" and o.ok is True]
    rng.shuffle(reads)
    for idx in reads:
        read = ops[idx]
        before = [w for w in ops if w.key == read.key and writes(w) and w.ret < read.call]
        stale_values = [written(w1) for w2 in before for w1 in before
                        if w1.ret < w2.call and written(w1) not in (None, written(w2), read.output)]
        if stale_values:
            stale = stale_values[rng.randrange(len(stale_values))]
            break
    else:
        return None
    new_ops = list(ops)
    new_ops[idx] = replace(ops[idx], output=stale)
    return new_ops, ops[idx], new_ops[idx]


def random_small_history(rng: random.Random, n_ops: int, values: Sequence[str] = ("a", "b"),
                         p_pending: float = 0.2) -> list[Op]:
    """``n_ops`` ops on one key with random intervals, outcomes and outputs (often not
    linearizable): input for comparing the checker with :func:`brute_force_linearizable`."""
    ops = []
    for client in range(n_ops):
        call = rng.uniform(0.0, 10.0)
        ret = call + rng.uniform(0.1, 4.0)
        kind = rng.choice(("get", "get", "put", "put", "cas", "delete"))
        pending = rng.random() < p_pending and kind != "get"
        if kind == "get":
            inp, out, ok = None, rng.choice((None, *values)), True
        elif kind == "cas":
            inp = (rng.choice((None, *values)), rng.choice(values))
            out = rng.choice((CAS_OK, PRECONDITION_FAILED))
            ok = out == CAS_OK
        else:
            inp, out, ok = (rng.choice(values) if kind == "put" else None), None, True
        if pending:
            out, ok = None, None
        ops.append(Op(client, kind, "k", inp, out, call, ret, ok))
    return ops


def brute_force_linearizable(ops: Sequence[Op], step: Callable[[Any, Op], tuple[bool, Any]],
                             initial: Any = None) -> bool:
    """Whether some order of the completed ops plus some subset of the pending ones respects
    real time and ``step``: the definition, by exhaustive search (small histories only)."""
    completed = [op for op in ops if op.ok is not None]
    pending = [op for op in ops if op.ok is None]

    def ret(op: Op) -> float:
        return float("inf") if op.ok is None else op.ret  # type: ignore[return-value]

    for r in range(len(pending) + 1):
        for chosen in itertools.combinations(pending, r):
            for order in itertools.permutations([*completed, *chosen]):
                if any(ret(later) < earlier.call for k, earlier in enumerate(order) for later in order[k + 1:]):
                    continue
                state, legal = initial, True
                for op in order:
                    legal, state = step(state, op)
                    if not legal:
                        break
                if legal:
                    return True
    return False

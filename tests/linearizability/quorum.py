"""Checkers for the weaker read levels: ``quorum`` and ``one`` (``x-objstore-consistency``).

A history here is a list of :class:`~tests.linearizability.history.Op` on keys of one bucket:
``put`` (``input`` the value, a body no other write writes; ``output`` the Raft commit index
the gateway reported in ``x-objstore-commit-index``), ``delete`` (``output`` likewise) and
``get`` (``output`` the body read, None for NoSuchKey). Writes may be concurrent on one key:
their order is the commit index, not real time. Outcomes follow :mod:`.history`: ``ok``
True acknowledged, False a definite failure, None unknown (a 503 after the commit may
have happened: it may have any index, or none).

The quorum guarantee, per completed read R of key k (:func:`check_quorum`):
- R returns None or a value some write of k wrote, never one whose write definitely failed
  and never one whose write began after R returned;
- let F be the highest commit index among writes of k acknowledged before R began: the
  write R returns committed at F or later (a write with an unknown outcome passes: its
  index is unknown); R returns None only if no write was acknowledged before it began, or
  the write at F is a delete, or a delete with an unknown outcome may have come later.

``one`` (:func:`check_one`) keeps only the first rule; both report each read's staleness:
how long before R began the first acknowledged write newer than the value R returned was
acknowledged (0 for a read that returned the newest). Both are linear in the history, so
they never run out of time.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from tests.linearizability.history import Op

WRITES = ("put", "delete")


@dataclass(frozen=True)
class Violation:
    read: Op
    reason: str

    def render(self) -> str:
        return f"{self.read.describe()}: {self.reason}"


@dataclass(frozen=True)
class LevelResult:
    """The verdict on a history at one level, and each checked read's staleness in seconds."""

    level: str
    reads: int
    violations: tuple[Violation, ...] = ()
    staleness: tuple[float, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return not self.violations

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile (0-100) of staleness, 0.0 without reads."""
        if not self.staleness:
            return 0.0
        ordered = sorted(self.staleness)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    def render(self) -> str:
        head = (f"{self.level}: {self.reads} reads, {len(self.violations)} violations, staleness "
                f"p50 {self.percentile(50) * 1000:.1f} ms p99 {self.percentile(99) * 1000:.1f} ms")
        return "\n".join([head, *(v.render() for v in self.violations[:10])])


def _check(history: Iterable[Op], level: str) -> LevelResult:
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    violations: list[Violation] = []
    staleness: list[float] = []
    reads = 0
    for ops in by_key.values():
        writes = [op for op in ops if op.kind in WRITES]
        acked = sorted((op for op in writes if op.ok), key=lambda op: op.ret)  # type: ignore[arg-type, return-value]
        by_value = {op.input: op for op in writes if op.kind == "put"}
        for r in (op for op in ops if op.kind == "get" and op.ok):
            reads += 1
            v = _violation(r, by_value, acked, writes, level)
            if v is not None:
                violations.append(Violation(r, v))
            staleness.append(_staleness(r, by_value, acked))
    return LevelResult(level, reads, tuple(violations), tuple(staleness))


def _index(w: Op | None) -> int | None:
    """A write's commit index: None when its outcome is unknown (or for the initial state, 0)."""
    if w is None:
        return 0
    return int(w.output) if w.ok else None


def _violation(r: Op, by_value: dict, acked: Sequence[Op], writes: Sequence[Op], level: str) -> str | None:
    w = by_value.get(r.output) if r.output is not None else None
    if r.output is not None:
        if w is None:
            return "returned a value no write wrote"
        if w.ok is False:
            return f"returned the value of a write that failed: {w.describe()}"
        if r.ret is not None and w.call > r.ret:
            return f"returned a value whose write began after the read returned: {w.describe()}"
    if level != "quorum":
        return None
    before = [a for a in acked if a.ret < r.call]  # type: ignore[operator]
    if not before:
        return None
    floor = max(before, key=lambda a: int(a.output))
    if r.output is None:
        if floor.kind == "delete":
            return None
        if any(d.kind == "delete" and d.ok is None and d.call < r.ret for d in writes):  # type: ignore[operator]
            return None
        if any(d.kind == "delete" and d.ok and int(d.output) > int(floor.output) for d in writes):
            return None
        return f"returned nothing, but {floor.describe()} was acknowledged before the read began"
    index = _index(w)
    if index is not None and index < int(floor.output):
        return (f"returned the version committed at {index}, older than {floor.describe()} "
                f"acknowledged before the read began")
    return None


def _staleness(r: Op, by_value: dict, acked: Sequence[Op]) -> float:
    index = _index(by_value.get(r.output)) if r.output is not None else 0
    if index is None:
        return 0.0
    newer = [a for a in acked if a.ret < r.call and int(a.output) > index]  # type: ignore[operator]
    return max(0.0, r.call - min(a.ret for a in newer)) if newer else 0.0  # type: ignore[type-var, operator]


def check_quorum(history: Iterable[Op]) -> LevelResult:
    """The quorum guarantee (module docstring) over a history of one level's reads."""
    return _check(history, "quorum")


def check_one(history: Iterable[Op]) -> LevelResult:
    """``one``: only written values, never a failed write's; with staleness."""
    return _check(history, "one")

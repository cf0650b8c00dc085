"""The seeded nemesis of the many-hosts tests (tests/harness/hosts/nemesis.py), pure parts."""
from __future__ import annotations

import random

from tests.harness.hosts.nemesis import KINDS, plan

HOSTS = ["h1", "h2", "h3", "h4", "h5"]


def _plan(seed: int, seconds: float = 20):
    return plan(random.Random(seed), seconds, HOSTS, ["h1", "h2", "h3"], ["h4", "h5"])


def test_a_plan_is_a_function_of_its_seed_and_starts_with_every_kind():
    for seed in range(50):
        steps = _plan(seed)
        assert steps == _plan(seed)
        assert {s.kind for s in steps[:len(KINDS)]} == set(KINDS)
        assert sum(s.hold + s.gap for s in steps) >= 20
        assert all(1.0 <= s.hold <= 3.0 and 0.5 <= s.gap <= 1.5 for s in steps)
    assert _plan(1) != _plan(2)
    assert len(_plan(3, seconds=1)) == len(KINDS)  # a short run still injects every kind


def test_each_kind_makes_the_fault_it_names():
    for seed in range(30):
        for s in _plan(seed):
            f = s.faults
            if s.kind in ("partition", "isolate", "split"):
                assert f.cuts and all((b, a) in f.cuts for a, b in f.cuts) and not f.loss and not f.rates
            if s.kind == "isolate":
                (victim,) = {a for a, _ in f.cuts if sum(x == a for x, _ in f.cuts) == 4}
                assert {a for a, b in f.cuts if b == victim} == set(HOSTS) - {victim}
            if s.kind == "split":
                sides = {frozenset(b for b in HOSTS if (a, b) not in f.cuts) for a in HOSTS}
                assert len(sides) == 2
                minority = min(sides, key=len)
                assert len(minority) <= 2 and minority & {"h1", "h2", "h3"} and minority & {"h4", "h5"}
            if s.kind == "one_way":
                assert len(f.cuts) == 1 and not f.loss
            if s.kind == "loss":
                assert f.loss and all(0.03 <= p <= 0.15 for _, _, p in f.loss) and not f.cuts
            if s.kind == "bandwidth":
                assert f.rates and not f.cuts and all(m in (5, 10, 20, 50) for _, m in f.rates)

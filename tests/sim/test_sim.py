"""The deterministic cluster simulation: many seeds, each thousands of steps with faults,
Raft's safety properties checked after every step, and every acknowledged write applied
everywhere at the end.

- ``RAFT_SIM_SEEDS=N`` runs seeds 0..N-1 (default 200); ``RAFT_SIM_STEPS`` the steps per
  seed (default 2000).
- ``SEED=123`` (or ``SEED=1,2,3``) replays just those seeds:
  ``SEED=123 python -m pytest tests/sim -k test_seed``. A failure prints the seed, the
  cluster state and the recent faults.
"""
import os

import pytest

from metadata.raft.core import RaftNode
from tests.sim.checker import SafetyViolation
from tests.sim.simulation import Simulation

STEPS = int(os.environ.get("RAFT_SIM_STEPS", "2000"))


def _seeds() -> list[int]:
    if os.environ.get("SEED"):
        return [int(s) for s in os.environ["SEED"].split(",")]
    return list(range(int(os.environ.get("RAFT_SIM_SEEDS", "200"))))


@pytest.mark.parametrize("seed", _seeds())
def test_seed(seed):
    sim = Simulation(seed, STEPS)
    sim.run()
    assert sim.events >= STEPS


def test_a_seed_replays_identically():
    def run(seed):
        sim = Simulation(seed, 1500)
        sim.run()
        return sim.now, sim.events, list(sim.trace), sorted(sim.checker.acked.items()), sim.describe_nodes()
    assert run(12) == run(12)
    assert run(12) != run(13)


def test_the_simulation_exercises_what_it_claims():
    total: dict[str, int] = {}
    acked = reads = 0
    for seed in range(40):
        sim = Simulation(seed, STEPS)
        sim.run()
        for k, v in sim.stats.items():
            total[k] = total.get(k, 0) + v
        acked += len(sim.checker.acked)
        reads += sim.checker.reads_checked
    for what in ("leaders elected", "crashes", "snapshots sent", "add_learner proposed", "add_voter proposed",
                 "remove proposed", "conf entries applied"):
        assert total.get(what, 0) > 0, (what, total)
    assert total["leaders elected"] > 200 and acked > 500 and reads > 100, (total, acked, reads)


class _VotesWithoutLogCheck(RaftNode):
    """Broken on purpose: grants votes without the election restriction (§5.4.1)."""

    def _candidate_log_ok(self, index, term):
        return True


class _ReadsWithoutConfirmation(RaftNode):
    """Broken on purpose: answers ReadIndex from its commit index without a heartbeat round."""

    def _leader_read(self, ctx, frm):
        self._answer_read(ctx, frm, self.log.committed)


@pytest.mark.parametrize("broken", [_VotesWithoutLogCheck, _ReadsWithoutConfirmation])
def test_the_checker_catches_a_broken_core(broken):
    for seed in range(100):
        try:
            Simulation(seed, STEPS, node_cls=broken).run()
        except SafetyViolation as exc:
            assert f"seed {seed} failed" in str(exc) and "replay: SEED=" in str(exc)
            return
    pytest.fail(f"no seed of 100 caught {broken.__name__}")

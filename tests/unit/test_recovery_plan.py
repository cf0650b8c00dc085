"""The recovery plan of a Raft metadata node's storage: a pure function of what was found
on disk (:func:`metadata.storage.recovery.plan_recovery`), checked case by case."""
from __future__ import annotations

import pytest

from metadata.raft.records import ConfState, HardState, SnapshotMeta
from metadata.storage.recovery import Found, RecoveryPlan, StorageError, plan_recovery

SNAP100 = SnapshotMeta(100, 3, ConfState(frozenset({"m1"})))

# (case, found, reset_log_to, bootstrap, hard_state, recovering_until, write_recovering)
CASES = [
    ("empty dir, new cluster of three: bootstrap",
     Found(3, False), None, True, HardState(1, "", 3), 0, False),
    ("empty dir, joining: wait for the leader",
     Found(1, True), None, False, HardState(0, "", 0), 0, False),
    ("crash during bootstrap (entries, no hard state): start over",
     Found(3, False, log_last=2, log_last_term=1), 1, True, HardState(1, "", 3), 0, False),
    ("no hard state beside a log of a later term: distrust it",
     Found(3, False, log_last=7, log_last_term=2), None, False, HardState(2, "", 0), 7, True),
    ("damaged hard state: distrust up to the log's end",
     Found(3, False, log_last=9, log_last_term=2, hard_state_damage="hard-state is damaged"),
     None, False, HardState(2, "", 0), 9, True),
    ("damaged hard state, empty log: distrust from index 1",
     Found(1, True, hard_state_damage="hard-state is damaged"), None, False, HardState(0, "", 0), 1, True),
    ("salvage discarded entries: distrust up to the highest seen",
     Found(3, False, log_last=40, log_last_term=2, hard_state=HardState(2, "m1", 40), salvaged_from=41,
           salvage_highest=60), None, False, HardState(2, "m1", 40), 60, True),
    ("intact state: nothing to do",
     Found(3, False, snapshot=SNAP100, log_first=90, log_last=120, log_last_term=4, log_term_at_snapshot=3,
           hard_state=HardState(4, "m2", 118)), None, False, HardState(4, "m2", 118), 0, False),
    ("log ends before the snapshot: restart it after the snapshot",
     Found(3, False, snapshot=SNAP100, log_last=50, log_last_term=3, hard_state=HardState(3, "", 100)),
     101, False, HardState(3, "", 100), 0, False),
    ("log starts after the snapshot (a gap): reset and distrust",
     Found(3, False, snapshot=SNAP100, log_first=150, log_last=170, log_last_term=4,
           hard_state=HardState(4, "", 170)), 101, False, HardState(4, "", 100), 170, True),
    ("log disagrees with the snapshot's term: restart it after the snapshot",
     Found(3, False, snapshot=SNAP100, log_first=90, log_last=120, log_last_term=2, log_term_at_snapshot=2,
           hard_state=HardState(4, "", 100)), 101, False, HardState(4, "", 100), 0, False),
    ("log compacted but no snapshot intact: reset and distrust",
     Found(3, False, log_first=5, log_last=30, log_last_term=2, hard_state=HardState(2, "", 30)),
     1, False, HardState(2, "", 0), 30, True),
    ("hard state commits beyond the log: distrust up to the commit, clamp it",
     Found(3, False, log_last=10, log_last_term=2, hard_state=HardState(2, "m1", 25)),
     None, False, HardState(2, "m1", 10), 25, True),
    ("a recovering marker is kept, nothing new to write",
     Found(3, False, log_last=10, log_last_term=2, hard_state=HardState(2, "m1", 10), marker_until=44),
     None, False, HardState(2, "m1", 10), 44, False),
    ("no hard state beside a snapshot: derive it from the snapshot",
     Found(3, False, snapshot=SNAP100, log_first=101, log_last=100), None, False, HardState(3, "", 0), 0, False),
]


@pytest.mark.parametrize("case,found,reset,bootstrap,hs,until,write", CASES, ids=[c[0] for c in CASES])
def test_plan(case: str, found: Found, reset: int | None, bootstrap: bool, hs: HardState, until: int,
              write: bool) -> None:
    plan = plan_recovery(found)
    assert isinstance(plan, RecoveryPlan)
    assert (plan.reset_log_to, plan.bootstrap, plan.hard_state, plan.recovering_until, plan.write_recovering) == (
        reset, bootstrap, hs, until, write)
    assert bool(plan.reason) == write


def test_notes_say_why():
    plan = plan_recovery(Found(3, False, log_first=5, log_last=30, log_last_term=2, hard_state=HardState(2, "", 30),
                               notes=("snapshot snap-x damaged; deleted",)))
    assert plan.notes == ("snapshot snap-x damaged; deleted", "log starts at 5 and no snapshot is intact: discarded")
    assert plan.reason == "; ".join(plan.notes)


def test_a_new_cluster_needs_a_peer():
    with pytest.raises(StorageError):
        plan_recovery(Found(0, False))

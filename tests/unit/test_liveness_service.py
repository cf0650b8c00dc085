"""The leader side of liveness (metadata.node_health.LivenessService) over a real state
machine and a fake replicator: only a leader acts, a heartbeat registers a node once, a
new leadership starts a fresh grace period, and a transition never overwrites a state
changed meanwhile (SetNodeState's if_state)."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from metadata.api import commands as c
from metadata.api.commands import Outcome
from metadata.fsm.machine import MetadataFSM
from metadata.liveness import LivenessSettings
from metadata.node_health import LivenessService
from objstore.errors import NotLeader
from objstore.types import NodeInfo


class FakeReplicator:
    """Applies proposals at once to a real MetadataFSM; leadership is a switch."""

    def __init__(self) -> None:
        self.fsm = MetadataFSM()
        self.leader = True
        self.proposed: list[c.Command] = []

    def is_leader(self) -> bool:
        return self.leader

    def not_leader(self) -> NotLeader:
        return NotLeader("not the leader", leader="m2:1")

    async def read(self, fn: Callable[[MetadataFSM], Any]) -> Any:
        if not self.leader:
            raise self.not_leader()
        return fn(self.fsm)

    async def propose(self, cmd: c.Command) -> Outcome:
        if not self.leader:
            raise self.not_leader()
        self.proposed.append(cmd)
        return self.fsm.apply(self.fsm.applied_index + 1, cmd)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


STATS = {"capacity_bytes": 1000, "used_bytes": 100, "free_bytes": 900, "blob_count": 3}


def service() -> tuple[FakeReplicator, Clock, LivenessService]:
    rep, clock = FakeReplicator(), Clock()
    return rep, clock, LivenessService(lambda: rep, LivenessSettings(node_timeout=10, down_after=60), clock)


def state(rep: FakeReplicator, node_id: str) -> str:
    return rep.fsm.cluster_map().node(node_id).state


async def test_the_first_heartbeat_registers_later_ones_write_nothing() -> None:
    rep, clock, svc = service()
    answer = await svc.heartbeat(NodeInfo("s1", "h:1", capacity_bytes=1000), STATS)
    assert answer == {"epoch": 1, "state": "up"} and len(rep.proposed) == 1
    for t in range(1, 6):
        clock.now = t
        await svc.heartbeat(NodeInfo("s1", "h:1", capacity_bytes=2000), STATS)
    assert len(rep.proposed) == 1  # no Raft write per heartbeat, not even for a new capacity
    await svc.heartbeat(NodeInfo("s1", "h:9"), STATS)  # it moved: registered again, same state
    assert len(rep.proposed) == 2 and rep.fsm.cluster_map().node("s1").address == "h:9"
    assert (await svc.health())["nodes"][0]["heartbeat_age"] == 0.0


async def test_the_leader_proposes_transitions_and_followers_do_nothing() -> None:
    rep, clock, svc = service()
    await svc.heartbeat(NodeInfo("s1", "h:1"), STATS)
    clock.now = 10.0
    moved = await svc.step()
    assert [(t.node_id, t.to_state) for t in moved] == [("s1", "down")] and state(rep, "s1") == "down"
    assert rep.proposed[-1] == c.SetNodeState("s1", "down", if_state="up")
    rep.leader = False
    clock.now = 100.0
    assert await svc.step() == []  # a follower never proposes
    with pytest.raises(NotLeader):
        await svc.heartbeat(NodeInfo("s1", "h:1"), STATS)


async def test_a_new_leadership_grants_a_full_timeout_again() -> None:
    rep, clock, svc = service()
    await svc.heartbeat(NodeInfo("s1", "h:1"), STATS)
    rep.leader = False
    clock.now = 50.0
    await svc.step()
    rep.leader = True  # elected again at 50: what it heard before does not count
    assert await svc.step() == []
    clock.now = 59.0
    assert await svc.step() == []
    clock.now = 60.0
    assert [t.to_state for t in await svc.step()] == ["down"]


async def test_a_transition_never_overwrites_a_state_changed_meanwhile() -> None:
    rep, clock, svc = service()
    await svc.heartbeat(NodeInfo("s1", "h:1"), STATS)
    clock.now = 10.0
    decided = svc.monitor.transitions(rep.fsm.cluster_map(), clock.now)
    assert [(t.from_state, t.to_state) for t in decided] == [("up", "down")]
    await rep.propose(c.SetNodeState("s1", "draining"))  # an operator, between decision and proposal
    epoch = rep.fsm.cluster_map().epoch
    t = decided[0]
    await rep.propose(c.SetNodeState(t.node_id, t.to_state, if_state=t.from_state))
    assert state(rep, "s1") == "draining" and rep.fsm.cluster_map().epoch == epoch

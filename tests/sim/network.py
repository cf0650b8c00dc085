"""A small synchronous in-process network of Raft hosts for unit tests (after etcd's
``network`` in raft_test.go): messages are delivered in FIFO order until quiet, links can
be cut, message types dropped, nodes crashed (keeping their disk) and restarted.

Deterministic: one seeded ``random.Random`` feeds every node; peers are visited sorted.
"""
from __future__ import annotations

import random
from collections import deque
from typing import Callable, Iterable

from metadata.raft.config import RaftConfig
from metadata.raft.core import RaftNode
from metadata.raft.messages import Message, MessageType
from metadata.raft.ready import Role
from metadata.raft.storage import MemoryStorage
from tests.sim.host import Host


class Network:
    def __init__(self, voters: Iterable[str], learners: Iterable[str] = (), *, seed: int = 0,
                 node_cls: type[RaftNode] = RaftNode, **config: object) -> None:
        voters, learners = list(voters), list(learners)
        self.config = {"election_ticks": 10, "heartbeat_ticks": 1, **config}
        self.node_cls = node_cls
        self.rng = random.Random(seed)
        self.disks = {i: MemoryStorage.bootstrapped(voters, learners) for i in voters + learners}
        self.hosts: dict[str, Host] = {}
        for i in voters + learners:
            self.start(i)
        self.cut: set[tuple[str, str]] = set()
        self.drop_types: set[MessageType] = set()
        self.filter: Callable[[Message], bool] | None = None  # False drops the message
        self.in_flight: deque[Message] = deque()
        self.delivered: list[Message] = []
        self.dropped: list[Message] = []

    # --- membership of the simulation ---------------------------------------------------

    def start(self, nid: str, disk: MemoryStorage | None = None, **overrides: object) -> Host:
        """Start ``nid`` on its disk (a new empty disk for a node joining later)."""
        disk = disk or self.disks.get(nid) or MemoryStorage()
        self.disks[nid] = disk
        cfg = RaftConfig(nid, **{**self.config, **overrides})  # type: ignore[arg-type]
        host = Host(cfg, disk, random.Random(self.rng.random()), self.node_cls, keep_data=True)
        self.hosts[nid] = host
        return host

    def crash(self, nid: str) -> None:
        del self.hosts[nid]

    def restart(self, nid: str, **overrides: object) -> Host:
        return self.start(nid, self.disks[nid], **overrides)

    def node(self, nid: str) -> RaftNode:
        return self.hosts[nid].node

    # --- links ----------------------------------------------------------------------------

    def isolate(self, nid: str) -> None:
        for other in self.disks:
            if other != nid:
                self.cut_link(nid, other)

    def cut_link(self, a: str, b: str) -> None:
        self.cut.add((a, b))
        self.cut.add((b, a))

    def heal(self) -> None:
        self.cut.clear()
        self.drop_types.clear()
        self.filter = None

    # --- running --------------------------------------------------------------------------

    def send(self, msgs: Iterable[Message]) -> None:
        for m in msgs:
            if (m.frm, m.to) in self.cut or m.type in self.drop_types or (self.filter and not self.filter(m)):
                self.dropped.append(m)
            else:
                self.in_flight.append(m)

    def pump(self, max_steps: int = 200_000) -> None:
        """Handle Readies and deliver messages until nothing is left to do."""
        for _ in range(max_steps):
            busy = False
            for nid in sorted(self.hosts):
                host = self.hosts[nid]
                while host.node.has_ready():
                    host.process_ready(self.send)
                    busy = True
            if self.in_flight:
                m = self.in_flight.popleft()
                host = self.hosts.get(m.to)
                if host is not None:
                    self.delivered.append(m)
                    host.node.step(m)
                busy = True
            if not busy:
                return
        raise AssertionError("the network did not go quiet")

    def tick(self, n: int = 1, ids: Iterable[str] | None = None) -> None:
        for _ in range(n):
            for nid in sorted(ids if ids is not None else self.hosts):
                if nid in self.hosts:
                    self.hosts[nid].node.tick()
            self.pump()

    def tick_until(self, cond: Callable[[], bool], max_ticks: int = 500) -> None:
        """Tick every node until ``cond()`` holds; fail after ``max_ticks``."""
        for _ in range(max_ticks):
            if cond():
                return
            self.tick()
        assert cond(), f"condition not reached within {max_ticks} ticks"

    def elect(self, nid: str) -> None:
        self.node(nid).campaign()
        self.pump()
        assert self.node(nid).role is Role.LEADER, f"{nid} did not win: {self.node(nid).role}"

    def leaders(self) -> list[str]:
        return sorted(i for i, h in self.hosts.items() if h.node.role is Role.LEADER)

    def leader(self) -> str:
        """The leader with the highest term (asserting there is one)."""
        ls = self.leaders()
        assert ls, "no leader"
        return max(ls, key=lambda i: self.hosts[i].node.term)

    def propose(self, nid: str, data: bytes) -> tuple[int, int]:
        at = self.node(nid).propose(data)
        self.pump()
        return at

    def applied(self, nid: str) -> list[bytes]:
        return self.hosts[nid].applied_data()

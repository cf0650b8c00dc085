"""Configuration of one Raft node (validated on construction).

Time is counted in ticks: the driver calls ``RaftNode.tick()`` at a fixed interval (for
example every 100 ms), so ``election_ticks=10`` means a randomized election timeout in
``[1 s, 2 s)`` and ``heartbeat_ticks=1`` a heartbeat every 100 ms.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RaftConfig:
    id: str
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    # Pre-vote: a node first asks whether it could win before raising its term, so a
    # partitioned node that rejoins does not depose a healthy leader.
    pre_vote: bool = True
    # Check-quorum: a leader that has not heard from a quorum within an election timeout
    # steps down, and followers that heard from a leader within one ignore vote requests.
    check_quorum: bool = True
    max_msg_bytes: int = 1 << 20  # payload bytes per APP message (at least one entry)
    max_inflight_msgs: int = 256  # unacknowledged APP messages per follower
    max_inflight_bytes: int = 0  # unacknowledged payload bytes per follower (0: no limit)
    max_apply_bytes: int = 4 << 20  # committed entry bytes per Ready (at least one entry)
    # The driver's applied index on restart, when its state machine is durable beyond the
    # latest snapshot; 0 means the snapshot index (entries after it are applied again).
    applied: int = 0
    # Lease reads: a leader answers ReadIndex from its commit index without a heartbeat
    # round while it holds a lease: a quorum acknowledged a heartbeat it sent less than
    # lease_ticks ago, and each of them refuses to vote for anyone else until an election
    # timeout after receiving it (nodes with lease reads also refuse votes for an election
    # timeout after starting, having forgotten such promises). Relies on bounded clock
    # drift between nodes; off by default. Requires check_quorum.
    lease_reads: bool = False
    # How long a quorum-acknowledged heartbeat keeps the lease, in the leader's ticks
    # (0: election_ticks // 2). Followers keep their promise for election_ticks of their
    # own ticks, so the lease is safe while tick rates differ by less than that ratio.
    lease_ticks: int = 0
    # Lazy commit: a commit index that moved sends no APP of its own; followers learn it
    # with the next entries or the next heartbeat (at most heartbeat_ticks later). Saves a
    # round of messages per commit when proposals come one at a time; the followers'
    # state machines lag by up to a heartbeat meanwhile. Off by default.
    lazy_commit: bool = False

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a raft node needs a non-empty id")
        if self.heartbeat_ticks < 1 or self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("need 1 <= heartbeat_ticks < election_ticks")
        if self.max_inflight_msgs < 1:
            raise ValueError("max_inflight_msgs must be at least 1")
        if self.lease_reads and not self.check_quorum:
            raise ValueError("lease_reads requires check_quorum")
        if self.lease_ticks == 0:
            object.__setattr__(self, "lease_ticks", max(1, self.election_ticks // 2))
        if not 0 < self.lease_ticks < self.election_ticks:
            raise ValueError("need 0 < lease_ticks < election_ticks")

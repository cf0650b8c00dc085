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
    # round, trusting that no other leader can be elected within an election timeout of
    # its last quorum contact. Only safe with bounded clock drift between nodes (ticks
    # that run at the same rate); off by default. Requires check_quorum.
    lease_reads: bool = False

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a raft node needs a non-empty id")
        if self.heartbeat_ticks < 1 or self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("need 1 <= heartbeat_ticks < election_ticks")
        if self.max_inflight_msgs < 1:
            raise ValueError("max_inflight_msgs must be at least 1")
        if self.lease_reads and not self.check_quorum:
            raise ValueError("lease_reads requires check_quorum")

"""The leader's view of each follower: flow control for replication (as etcd's tracker).

States of a :class:`Progress`:

- ``PROBE``: the leader does not know where the follower's log matches; it sends one
  APP at a time (``probes_paused`` after each) and waits for the answer or the next
  heartbeat response. Rejections walk ``next`` back (fast backtracking).
- ``REPLICATE``: the follower accepts entries; the leader streams APPs optimistically
  (``next`` advances as it sends), at most ``max_inflight`` messages / bytes unacked.
- ``SNAPSHOT``: ``next - 1`` was compacted away; a snapshot is on its way. No APPs until
  the driver reports the snapshot sent (or failed), or the follower acknowledges it.

Invariants: ``match < next``; ``pending_commit < next`` (the highest commit index sent);
inflight indexes ascend and are all ``>= match``.
"""
from __future__ import annotations

import enum
from collections import deque


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """The APPs sent to one follower and not yet acknowledged: (last index, bytes) each."""

    __slots__ = ("max_count", "max_bytes", "items", "bytes")

    def __init__(self, max_count: int, max_bytes: int) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.items: deque[tuple[int, int]] = deque()
        self.bytes = 0

    def add(self, index: int, size: int) -> None:
        self.items.append((index, size))
        self.bytes += size

    def free_le(self, index: int) -> None:
        items = self.items
        while items and items[0][0] <= index:
            self.bytes -= items.popleft()[1]

    def full(self) -> bool:
        return len(self.items) >= self.max_count or (self.max_bytes > 0 and self.bytes >= self.max_bytes)

    def reset(self) -> None:
        self.items.clear()
        self.bytes = 0


class Progress:
    __slots__ = ("match", "next", "state", "pending_snapshot", "recent_active", "probes_paused",
                 "inflights", "is_learner", "pending_commit")

    def __init__(self, next_index: int, max_inflight: int, max_inflight_bytes: int, is_learner: bool) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        self.recent_active = False
        self.probes_paused = False
        self.inflights = Inflights(max_inflight, max_inflight_bytes)
        self.is_learner = is_learner
        self.pending_commit = 0

    def _reset_state(self, state: ProgressState) -> None:
        self.probes_paused = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1
        self.pending_commit = min(self.pending_commit, self.next - 1)

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1
        self.pending_commit = min(self.pending_commit, self.match)

    def become_snapshot(self, index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = index

    def sent_entries(self, count: int, size: int) -> None:
        if self.state is ProgressState.REPLICATE and count:
            self.next += count
            self.inflights.add(self.next - 1, size)
        self.probes_paused = True

    def sent_commit(self, commit: int) -> None:
        self.pending_commit = min(max(self.pending_commit, commit), self.next - 1)

    def can_bump_commit(self, commit: int) -> bool:
        return self.pending_commit < min(commit, self.next - 1)

    def can_send_entries(self, last_index: int) -> bool:
        return self.next <= last_index and (self.state is ProgressState.PROBE or not self.inflights.full())

    def should_send_app(self, last_index: int, commit: int, bump_commit: bool = True) -> bool:
        """Whether an APP is due: entries to send, a probe, or (``bump_commit``) a commit
        index the follower has not been told."""
        state = self.state
        if state is ProgressState.PROBE:
            return not self.probes_paused
        if state is ProgressState.REPLICATE:
            return (bump_commit and self.can_bump_commit(commit)) or (
                self.match < last_index and (not self.probes_paused or self.can_send_entries(last_index)))
        return False

    def maybe_update(self, index: int) -> bool:
        """An APP_RESP acknowledged ``index``; False if it was stale."""
        if index <= self.match:
            return False
        self.match = index
        if self.next < index + 1:
            self.next = index + 1
        return True

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """An APP at ``rejected`` was refused; False if the refusal was stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            self.pending_commit = min(self.pending_commit, self.match)
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.pending_commit = min(self.pending_commit, self.next - 1)
        self.probes_paused = False
        return True

    def describe(self) -> dict[str, object]:
        return {"match": self.match, "next": self.next, "state": self.state.value,
                "learner": self.is_learner, "recent_active": self.recent_active,
                "inflight": len(self.inflights.items), "pending_snapshot": self.pending_snapshot}

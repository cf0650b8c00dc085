"""The safety properties of Raft, checked while a simulation runs.

- Election safety: at most one leader per term (checked after every step).
- Log matching: two logs holding an entry with the same index and term hold the same
  entry, preceded by the same term (so, by induction, identical prefixes); checked on
  every entry a node persists, against a registry of every (index, term) ever seen.
- Commit consistency: no index is reported committed with two different terms.
- Leader completeness: a node that becomes leader holds the newest entry known to be
  committed (hence, by log matching, every committed entry).
- State machine safety: every node applies, at each index, the same entry (hash chain
  over applied entries compared with a canonical chain), in index order, and installs
  only snapshots consistent with it.
- Acknowledged writes: a proposal is acknowledged when its proposer applies it at the
  (index, term) ``propose`` returned; acknowledged writes must survive (checked at the
  end by the simulation) and reads must see them: a ReadIndex result must not be below
  the index of any write acknowledged before the read was asked.

A failure raises :class:`SafetyViolation`.
"""
from __future__ import annotations

from metadata.raft.ready import Ready, Role
from metadata.raft.records import Entry, Snapshot
from tests.sim.host import Host


class SafetyViolation(AssertionError):
    pass


class Checker:
    def __init__(self) -> None:
        self.leader_of_term: dict[int, str] = {}
        self.entries: dict[tuple[int, int], tuple[bytes, int, int]] = {}  # (i, t) -> (data, kind, prev term)
        self.committed_term: dict[int, int] = {}
        self.max_committed = 0
        self.canon: dict[int, int] = {}  # index -> state machine hash after applying it
        self.acked: dict[int, bytes] = {}  # index -> data of acknowledged writes
        self.max_acked = 0
        self.reads_checked = 0

    def fail(self, msg: str) -> None:
        raise SafetyViolation(msg)

    def after_step(self, host: Host) -> None:
        node = host.node
        if node.role is Role.LEADER:
            prev = self.leader_of_term.get(node.term)
            if prev is None:
                self.leader_of_term[node.term] = node.id
                self._check_leader_completeness(host)
            elif prev != node.id:
                self.fail(f"two leaders in term {node.term}: {prev} and {node.id}")

    def _check_leader_completeness(self, host: Host) -> None:
        c = self.max_committed
        node = host.node
        if c == 0 or c < node.log.first_index() - 1:
            return  # covered by the node's snapshot, itself checked against the canonical chain
        t = node.log.term_or_zero(c)
        if t != self.committed_term[c]:
            self.fail(f"new leader {node.id} (term {node.term}) lacks committed entry {c} "
                      f"(term {self.committed_term[c]}; it has term {t}, last index {node.log.last_index()})")

    def on_ready(self, host: Host, rd: Ready) -> None:
        node = host.node
        if rd.entries:
            first = rd.entries[0]
            prev_t = node.log.term_or_zero(first.index - 1) if first.index > 1 else 0
            reg = self.entries
            for e in rd.entries:
                key = (e.index, e.term)
                seen = reg.get(key)
                if seen is None:
                    reg[key] = (e.data, e.kind, prev_t)
                elif seen[0] != e.data or seen[1] != e.kind or (seen[2] != prev_t and prev_t):
                    self.fail(f"log matching: {node.id} holds a different entry at (index {e.index}, term {e.term})")
                prev_t = e.term
        if rd.hard_state is not None and rd.hard_state.commit:
            c = rd.hard_state.commit
            t = node.log.term_or_zero(c)
            if t:
                known = self.committed_term.get(c)
                if known is None:
                    self.committed_term[c] = t
                    if c > self.max_committed:
                        if self.max_committed and node.log.term_or_zero(self.max_committed) not in (
                                0, self.committed_term[self.max_committed]):
                            self.fail(f"{node.id} commits {c} over a log that lacks committed {self.max_committed}")
                        self.max_committed = c
                elif known != t:
                    self.fail(f"index {c} committed with term {known} and term {t} (on {node.id})")

    def on_apply(self, host: Host, e: Entry) -> None:
        h = host.fsm_hash
        known = self.canon.get(e.index)
        if known is None:
            self.canon[e.index] = h
        elif known != h:
            self.fail(f"state machine safety: {host.id} applied a different entry at index {e.index}")

    def on_install(self, host: Host, snap: Snapshot) -> None:
        index, h = snap.data[:2]
        known = self.canon.get(index)
        if known is None:
            self.canon[index] = h
        elif known != h:
            self.fail(f"{host.id} installed a snapshot at {index} that differs from the applied state")

    def ack(self, index: int, data: bytes) -> None:
        self.acked[index] = data
        if index > self.max_acked:
            self.max_acked = index

    def check_read(self, nid: str, read_index: int, acked_before: int) -> None:
        self.reads_checked += 1
        if read_index < acked_before:
            self.fail(f"stale read on {nid}: read index {read_index} is below write {acked_before} "
                      f"acknowledged before the read began")

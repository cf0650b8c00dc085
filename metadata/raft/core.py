"""The Raft state machine: :class:`RaftNode`, a pure, sans-IO core in the manner of etcd's
``raft.go`` + ``rawnode.go``.

It performs no IO, reads no clock and draws randomness only from the injected
``random.Random`` (election timeouts). Inputs: ``tick()``, ``step(message)`` and the
local requests (``propose``, ``propose_conf_change``, ``read_index``,
``transfer_leadership``, ``report_snapshot``, ``report_unreachable``). Output: one
:class:`~metadata.raft.ready.Ready` at a time, acknowledged by ``advance``. See
:mod:`metadata.raft` for the driver loop and :mod:`metadata.raft.ready` for the ordering
rules. This module holds the node's state, its API and role transitions; the message
handling per role lives in :mod:`~metadata.raft.election`, :mod:`~metadata.raft.follower`
and :mod:`~metadata.raft.replication` (the leader).

Invariants (the Raft paper's, and how this code keeps them):
- Election safety: a node votes at most once per term (the vote is in the hard state,
  persisted before the vote response is sent) and only for a candidate whose log is at
  least as up to date as its own.
- A leader commits by counting replicas only entries of its own term (Figure 8); it
  counts its own copy only once persisted (``advance``).
- Log matching: a follower appends only after the entry preceding the new ones matches
  (index and term); a conflicting suffix is replaced, never a committed entry.
- Membership changes take effect when appended, one at a time (see
  :mod:`metadata.raft.confchange`).
- Every collection whose order reaches the outside (peers, messages) is iterated in a
  deterministic order, so a seeded run is reproducible.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from metadata.raft import election, follower, replication
from metadata.raft.config import RaftConfig
from metadata.raft.confchange import ConfChange, ConfHistory, validate
from metadata.raft.errors import NotLeader, ProposalDropped, TransferRejected
from metadata.raft.messages import CAMPAIGN_TRANSFER, Message, MessageType as MT
from metadata.raft.progress import Progress, ProgressState
from metadata.raft.quorum import committed_index, quorum_size
from metadata.raft.raftlog import RaftLog
from metadata.raft.readindex import ReadQueue
from metadata.raft.ready import ReadState, Ready, Role, SoftState, Status
from metadata.raft.records import ConfState, Entry, EntryKind, HardState
from metadata.raft.storage import Storage

if TYPE_CHECKING:
    import random

# Leader traffic that may leave before the Ready carrying it is persisted (ready.py, rule 1).
EARLY_TYPES = frozenset({MT.APP, MT.HEARTBEAT, MT.SNAP, MT.TIMEOUT_NOW, MT.READ_INDEX_RESP})
_SCAN_PAGE_BYTES = 4 << 20
NO_LEASE = 1 << 62  # lease_floor of a term whose lease was given up (a leadership transfer)


def _always(sent_at: int) -> bool:
    return True


class RaftNode:
    """One member of a Raft group."""

    def __init__(self, config: RaftConfig, storage: Storage, rng: random.Random) -> None:
        self.config = config
        self.id = config.id
        self.rng = rng
        self.log = RaftLog(storage, config.max_apply_bytes)
        hs, snap_meta = storage.initial_state()
        self.conf = ConfHistory(snap_meta.index, snap_meta.conf_state)
        lo, hi = max(snap_meta.index + 1, storage.first_index()), storage.last_index() + 1
        while lo < hi:  # configurations appended after the snapshot are in force (on append)
            page = storage.entries(lo, hi, _SCAN_PAGE_BYTES)
            for e in page:
                if e.kind is EntryKind.CONF:
                    self.conf.push(e.index, ConfChange.decode(e.data))
            lo = page[-1].index + 1
        commit = max(hs.commit, snap_meta.index, self.log.committed)
        if commit > self.log.last_index():
            raise ValueError(f"hard state commit {commit} is beyond the last log index {self.log.last_index()}")
        self.log.committed = commit
        applied = max(config.applied, snap_meta.index, self.log.applied)
        if applied > commit:
            raise ValueError(f"applied index {applied} is beyond the commit index {commit}")
        self.log.applied = self.log.applying = applied

        self.term = hs.term
        self.vote = hs.vote
        self.lead = ""
        self.role = Role.FOLLOWER
        self.voters: frozenset[str] = frozenset()
        self.learners: frozenset[str] = frozenset()
        self.peers: list[str] = []  # every node we replicate to (members, departing), sorted
        self.progress: dict[str, Progress] = {}
        # Leader only: removed nodes still fed until they hold their removal entry (index),
        # so they learn they are out and stop campaigning.
        self.departing: dict[str, int] = {}
        self.votes: dict[str, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = config.election_ticks
        self.ticks = 0  # ticks since this node started (heartbeat rounds are stamped with it)
        self.lease_until = 0  # lease reads: leader until this tick (see _leader_read)
        self.lease_floor = 0  # lease reads: ignore heartbeat rounds older than this
        self.lease_acks: dict[int, set[str]] = {}
        # Lease reads: the driver's check, by a clock that runs in a paused process too, that a
        # lease whose heartbeat round was sent at the given tick still holds (ticks alone may
        # fall behind real time when the process is paused or its loop stalls, which would
        # stretch the lease). Without a driver's check, ticks alone decide.
        self.lease_clock: Callable[[int], bool] = _always
        self.lead_transferee = ""
        self.pending_conf_index = 0
        self.read_queue = ReadQueue()
        self.pending_reads: list[tuple[bytes, str]] = []  # wait for a commit in this term
        self.msgs: list[Message] = []
        self.early_msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.dirty: dict[str, None] = {}  # peers to send appends to at the next flush
        self.dirty_all = False
        self.read_bcast = False
        self._outstanding: Ready | None = None
        self._prev_soft = SoftState("", Role.FOLLOWER)
        self._prev_hard = HardState(hs.term, hs.vote, commit)
        self._persisted_term = hs.term
        self._switch_config(self.conf.current)
        self._become_follower(self.term, "")

    # --- local requests -----------------------------------------------------------------

    def tick(self) -> None:
        """Advance the logical clock by one tick."""
        self.ticks += 1
        if self.role is Role.LEADER:
            self._tick_heartbeat()
        else:
            self.election_elapsed += 1
            if self.election_elapsed >= self.randomized_timeout and self._promotable():
                self.election_elapsed = 0
                self._hup(transfer=False)

    def campaign(self) -> None:
        """Start an election now (as if the election timeout had passed)."""
        self._hup(transfer=False)

    def propose(self, data: bytes) -> tuple[int, int]:
        """Append a command; returns its (index, term). The command is committed iff the
        entry applied at that index has that term. Raises NotLeader (with
        ``leader``) or ProposalDropped."""
        self._check_can_propose()
        e = Entry(self.log.last_index() + 1, self.term, data)
        self.log.append((e,))
        self.dirty_all = True
        return e.index, e.term

    def propose_many(self, datas: "list[bytes]") -> tuple[int, int]:
        """Append several commands at once; returns (index of the first, term)."""
        self._check_can_propose()
        first, term = self.log.last_index() + 1, self.term
        if datas:
            self.log.append([Entry(first + i, term, d) for i, d in enumerate(datas)])
            self.dirty_all = True
        return first, term

    def propose_conf_change(self, cc: ConfChange) -> tuple[int, int]:
        """Append a membership change (effective at once, see confchange.py). Raises
        NotLeader, ProposalDropped (another change is uncommitted, or this leader has not
        committed an entry of its term yet) or ConfChangeRejected."""
        self._check_can_propose()
        if self.pending_conf_index > self.log.committed:
            raise ProposalDropped("a membership change is still uncommitted")
        if not self._committed_in_term():
            raise ProposalDropped("the new leader has not committed an entry of its term yet")
        validate(self.conf.current, cc)
        e = Entry(self.log.last_index() + 1, self.term, cc.encode(), EntryKind.CONF)
        self.log.append((e,))
        self.pending_conf_index = e.index
        self._switch_config(self.conf.push(e.index, cc))
        self.dirty_all = True
        return e.index, e.term

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read point identified by ``ctx`` (unique per request).

        The answer arrives as a ``ReadState(ctx, index)`` in a later Ready (on a follower,
        after a round trip to the leader); it may never arrive (leader change, lost
        message), so the driver times out and retries. Raises NotLeader when no leader is
        known."""
        if self.role is Role.LEADER:
            self._leader_read(ctx, self.id)
        elif self.lead:
            self._send(Message(MT.READ_INDEX, self.lead, self.id, context=ctx))
        else:
            raise NotLeader(leader=None)

    def transfer_leadership(self, to: str) -> None:
        """Hand leadership to voter ``to`` once it has caught up (proposals are refused
        meanwhile; the attempt is abandoned after an election timeout)."""
        if self.role is not Role.LEADER:
            raise NotLeader(leader=self.lead or None)
        if to == self.id or to == self.lead_transferee:
            return
        if to not in self.voters:
            raise TransferRejected(f"{to} is not a voter")
        self.lead_transferee = to
        self.election_elapsed = 0
        if self.progress[to].match == self.log.last_index():
            self._send_timeout_now(to)
        else:
            self.dirty[to] = None

    def report_snapshot(self, to: str, ok: bool) -> None:
        """The driver finished sending a SNAP to ``to`` (ok) or gave up (not ok). Must be
        called once for every SNAP message sent, or replication to ``to`` stalls."""
        pr = self.progress.get(to)
        if self.role is not Role.LEADER or pr is None or pr.state is not ProgressState.SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.probes_paused = True  # wait for the APP_RESP (or the next heartbeat) before probing

    def report_unreachable(self, to: str) -> None:
        """A message to ``to`` could not be delivered: stop streaming optimistically."""
        pr = self.progress.get(to)
        if self.role is Role.LEADER and pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    # --- Ready ----------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether :meth:`ready` has work (False while a Ready awaits ``advance``)."""
        if self._outstanding is not None:
            return False
        self._flush()
        ph, log = self._prev_hard, self.log
        return bool(self.msgs or self.early_msgs or log.unstable or log.snapshot is not None
                    or self.read_states or log.has_next_committed()
                    or self.term != ph.term or self.vote != ph.vote or log.committed != ph.commit
                    or self.lead != self._prev_soft.leader or self.role is not self._prev_soft.role)

    def ready(self) -> Ready:
        """Take the pending work; call :meth:`advance` with it once done."""
        if self._outstanding is not None:
            raise RuntimeError("advance() the previous Ready first")
        self._flush()
        log = self.log
        soft = SoftState(self.lead, self.role)
        hard = HardState(self.term, self.vote, log.committed)
        early, late = self.early_msgs, self.msgs
        if early and self._persisted_term != self.term:
            late, early = early + late, []
        committed = log.next_committed()
        entries = tuple(log.unstable)
        hard_changed = hard != self._prev_hard
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard_changed else None,
            entries=entries,
            snapshot=log.snapshot,
            committed_entries=tuple(committed),
            early_messages=tuple(early),
            messages=tuple(late),
            read_states=tuple(self.read_states),
            must_sync=bool(entries) or log.snapshot is not None or (
                hard_changed and (hard.term != self._prev_hard.term or hard.vote != self._prev_hard.vote)),
        )
        self.early_msgs, self.msgs, self.read_states = [], [], []
        self._prev_soft = soft
        if committed:
            log.applying = committed[-1].index
        self._outstanding = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """Everything in ``rd`` is done (persisted, sent, applied)."""
        if rd is not self._outstanding:
            raise RuntimeError("advance() must get the Ready last returned by ready()")
        self._outstanding = None
        log = self.log
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
            self._persisted_term = rd.hard_state.term
        if rd.snapshot is not None:
            idx = rd.snapshot.meta.index
            log.stable_snap_to(idx)
            log.applied = max(log.applied, idx)
            log.applying = max(log.applying, idx)
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
            pr = self.progress.get(self.id)
            if self.role is Role.LEADER and pr is not None and log.match_term(last.index, last.term):
                if pr.maybe_update(last.index) and self._maybe_commit():
                    self._on_commit_advanced()
        if rd.committed_entries:
            log.applied = max(log.applied, rd.committed_entries[-1].index)

    # --- inspection -----------------------------------------------------------------------

    @property
    def conf_state(self) -> ConfState:
        """The configuration in force (the newest in the log, committed or not)."""
        return self.conf.current

    def conf_state_at(self, index: int) -> ConfState:
        """The configuration as of log index ``index`` (for a snapshot taken there)."""
        return self.conf.at(index)

    def status(self) -> Status:
        progress = {}
        if self.role is Role.LEADER:
            progress = {pid: pr.describe() for pid, pr in self.progress.items()}
        return Status(self.id, self.role, self.lead, self.term, self.vote, self.log.committed, self.log.applied,
                      self.log.first_index(), self.log.last_index(), self.conf.current, self.lead_transferee,
                      progress)

    # --- receiving ------------------------------------------------------------------------

    def step(self, m: Message) -> None:
        """Handle a message from another node (messages for other nodes are ignored)."""
        if m.to != self.id:
            return
        t = m.type
        if m.term > self.term:
            if (t is MT.VOTE or t is MT.PRE_VOTE) and m.context != CAMPAIGN_TRANSFER and election.in_lease(self):
                return  # we heard from a leader recently: ignore a disruptive candidate
            if t is MT.PRE_VOTE or (t is MT.PRE_VOTE_RESP and not m.reject):
                pass  # pre-votes never change our term
            elif t is MT.APP or t is MT.HEARTBEAT or t is MT.SNAP:
                self._become_follower(m.term, m.frm)
            else:
                self._become_follower(m.term, "")
        elif m.term < self.term and m.term != 0:
            if (self.config.check_quorum or self.config.pre_vote) and (t is MT.APP or t is MT.HEARTBEAT):
                # A stale leader: tell it our term so it steps down (it may be partitioned
                # away and unable to learn it otherwise).
                self._send(Message(MT.APP_RESP, m.frm, self.id, self.term))
            elif t is MT.PRE_VOTE:
                self._send(Message(MT.PRE_VOTE_RESP, m.frm, self.id, self.term, reject=True))
            return
        if t is MT.VOTE or t is MT.PRE_VOTE:
            election.handle_vote(self, m)
        elif self.role is Role.LEADER:
            replication.step_leader(self, m)
        elif self.role is Role.FOLLOWER or election.step_candidate(self, m):
            follower.step_follower(self, m)

    def _candidate_log_ok(self, index: int, term: int) -> bool:
        """The election restriction (§5.4.1): the candidate's log is at least as up to date."""
        return self.log.is_up_to_date(index, term)

    # --- elections ------------------------------------------------------------------------

    def _hup(self, transfer: bool) -> None:
        election.hup(self, transfer)

    def _promotable(self) -> bool:
        """May we campaign: a voter, or a voter removed by a change not known to be
        committed (the other voters may need us to commit it: in a pair whose leader
        removed itself, the survivor may lack the entry and need the leaver's vote). Such a
        candidate counts votes in the new configuration, like a leader managing a
        configuration without itself, and steps down once the change commits."""
        if self.log.snapshot is not None:
            return False
        if self.id in self.voters:
            return True
        changes = self.conf.changes
        return bool(changes) and self.log.committed < changes[-1][0] and \
            self.id in self.conf.at(changes[-1][0] - 1).voters

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = ""
            self.lease_floor = 0  # a lease given up for a transfer is given up for its term only
        self.lead = ""
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self.config.election_ticks + self.rng.randrange(self.config.election_ticks)
        self.lead_transferee = ""
        self.votes = {}
        cfg, nxt = self.config, self.log.last_index() + 1
        if self.departing:
            for pid in self.departing:
                del self.progress[pid]
            self.departing = {}
            self.peers = [pid for pid in self.progress if pid != self.id]
        for pid, pr in self.progress.items():
            self.progress[pid] = Progress(nxt, cfg.max_inflight_msgs, cfg.max_inflight_bytes, pr.is_learner)
        self.pending_conf_index = 0
        self.read_queue = ReadQueue()
        self.pending_reads = []
        self.lease_until = 0
        self.lease_acks = {}
        self.dirty = {}
        self.dirty_all = False
        self.read_bcast = False

    def _become_follower(self, term: int, lead: str) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        log = self.log
        me = self.progress.get(self.id)
        if me is not None:
            me.match = log.offset - 1  # what is persisted; the rest is acked in advance()
            me.become_replicate()
            me.recent_active = True
        # Conservatively treat the whole log as a possibly uncommitted membership change.
        self.pending_conf_index = log.last_index()
        log.append((Entry(log.last_index() + 1, self.term, b"", EntryKind.NOOP),))
        self.dirty_all = True

    # --- leader helpers (shared with replication.py) --------------------------------------

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.config.election_ticks:
            self.election_elapsed = 0
            if self.config.check_quorum:
                if not self._quorum_active():
                    self._become_follower(self.term, "")
                    return
                for pid, pr in self.progress.items():
                    if pid != self.id:
                        pr.recent_active = False
            self.lead_transferee = ""  # a transfer that did not finish in time is abandoned
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            replication.bcast_heartbeat(self, self.read_queue.last_ctx())

    def _quorum_active(self) -> bool:
        active = sum(1 for v in self.voters if v == self.id or self.progress[v].recent_active)
        return active >= quorum_size(len(self.voters))

    def _check_can_propose(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(leader=self.lead or None)
        if self.id not in self.voters:
            raise ProposalDropped("this leader is being removed from the group")
        if self.lead_transferee:
            raise ProposalDropped(f"leadership is being transferred to {self.lead_transferee}")

    def _committed_in_term(self) -> bool:
        return self.log.term_or_zero(self.log.committed) == self.term

    def _commit_allowed(self, index: int) -> bool:
        """Figure 8: only an entry of the leader's own term is committed by counting."""
        return self.log.term_or_zero(index) == self.term

    def _maybe_commit(self) -> bool:
        idx = committed_index([self.progress[v].match for v in self.voters])
        if idx > self.log.committed and self._commit_allowed(idx):
            self.log.committed = idx
            return True
        return False

    def _on_commit_advanced(self) -> None:
        self.dirty_all = True
        if self.pending_reads and self._committed_in_term():
            pending, self.pending_reads = self.pending_reads, []
            for ctx, frm in pending:
                self._leader_read(ctx, frm)
        if self.id not in self.voters and self.log.committed >= self.conf.last_index:
            replication.step_down_removed(self)

    def _leader_read(self, ctx: bytes, frm: str) -> None:
        """Linearizable read point: our commit index, once it is surely current (we have
        committed an entry of our term) and we are surely still leader (a quorum answered
        a heartbeat sent after the request, or we hold a lease, or we are the only voter)."""
        if not self._committed_in_term():
            self.pending_reads.append((ctx, frm))  # our commit index may still be stale
        elif self.voters == {self.id}:
            self._answer_read(ctx, frm, self.log.committed)
        elif (self.config.lease_reads and not self.lead_transferee and self.ticks < self.lease_until
              and self.lease_clock(self.lease_until - self.config.lease_ticks)):
            # A quorum acknowledged a heartbeat sent less than lease_ticks ago: none of them
            # votes for another leader until an election timeout after receiving it.
            self._answer_read(ctx, frm, self.log.committed)
        else:
            self.read_queue.add(self.log.committed, ctx, frm)
            self.read_queue.ack(self.id, ctx)
            self.read_bcast = True

    def _answer_read(self, ctx: bytes, frm: str, index: int) -> None:
        if frm == self.id:
            self.read_states.append(ReadState(ctx, index))
        else:
            self._send(Message(MT.READ_INDEX_RESP, frm, self.id, self.term, index=index, context=ctx))

    # --- configuration --------------------------------------------------------------------

    def _switch_config(self, cs: ConfState) -> None:
        self.voters, self.learners = cs.voters, cs.learners
        members = sorted(cs.voters | cs.learners)
        cfg, nxt = self.config, self.log.last_index() + 1
        progress: dict[str, Progress] = {}
        for pid in members:
            pr = self.progress.get(pid)
            if pr is None:
                pr = Progress(nxt, cfg.max_inflight_msgs, cfg.max_inflight_bytes, False)
                pr.recent_active = True  # do not let check-quorum count a brand-new member as dead
            pr.is_learner = pid in cs.learners
            progress[pid] = pr
            self.departing.pop(pid, None)
        if self.role is Role.LEADER:
            for pid, pr in self.progress.items():
                if pid not in progress and pid != self.id:
                    self.departing.setdefault(pid, self.conf.last_index)
            for pid in self.departing:
                progress[pid] = self.progress[pid]
            progress = dict(sorted(progress.items()))
        self.progress = progress
        self.peers = [pid for pid in progress if pid != self.id]
        if self.role is Role.LEADER:
            if self.lead_transferee and self.lead_transferee not in cs.voters:
                self.lead_transferee = ""
            if self._maybe_commit():
                self._on_commit_advanced()
            self.dirty_all = True
        elif self.role is not Role.FOLLOWER and not self._promotable():
            self._become_follower(self.term, "")

    # --- sending --------------------------------------------------------------------------

    def _send(self, m: Message) -> None:
        if m.type in EARLY_TYPES:
            self.early_msgs.append(m)
        else:
            self.msgs.append(m)

    def _send_timeout_now(self, to: str) -> None:
        # The target may win without waiting for the followers' leases to run out, and it
        # may get this message late (after the transfer was abandoned): trust no lease for
        # the rest of this term.
        self.lease_until = 0
        self.lease_floor = NO_LEASE
        self._send(Message(MT.TIMEOUT_NOW, to, self.id, self.term))

    def _flush(self) -> None:
        if self.role is Role.LEADER:
            replication.flush(self)
        else:
            self.dirty = {}
            self.dirty_all = False
            self.read_bcast = False


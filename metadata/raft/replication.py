"""The leader's side of the core: log replication, heartbeats, snapshots to followers,
read confirmation and leadership hand-over. Functions of a leading
:class:`~metadata.raft.core.RaftNode` (kept apart from core.py to keep both readable).

Batching and pipelining: sends are not made when a proposal or an acknowledgement
arrives but at the next :func:`flush` (called by ``has_ready``/``ready``): every
proposal since the last Ready goes out in one APP per follower (up to
``max_msg_bytes``; more APPs while the follower's in-flight window allows). So the
number of messages follows the number of Ready cycles, not the number of proposals.

Fast backtracking (etcd's): a rejecting follower returns a hint (index, term) of where
its log may match; the leader skips every index whose term in its own log is above the
hinted term, so it probes at most once per term of divergence.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from metadata.raft.errors import Compacted, SnapshotTemporarilyUnavailable, Unavailable
from metadata.raft.messages import Message, MessageType as MT
from metadata.raft.progress import Progress, ProgressState
from metadata.raft.quorum import quorum_size
from metadata.raft.records import entries_size

if TYPE_CHECKING:
    from metadata.raft.core import RaftNode

PROBE, REPLICATE, SNAPSHOT = ProgressState.PROBE, ProgressState.REPLICATE, ProgressState.SNAPSHOT


def step_leader(node: "RaftNode", m: Message) -> None:
    t = m.type
    if t is MT.READ_INDEX:
        node._leader_read(m.context, m.frm)
        return
    pr = node.progress.get(m.frm)
    if pr is None:
        return
    if t is MT.APP_RESP:
        _handle_app_resp(node, m, pr)
    elif t is MT.HEARTBEAT_RESP:
        _handle_heartbeat_resp(node, m, pr)


def _handle_app_resp(node: "RaftNode", m: Message, pr: Progress) -> None:
    pr.recent_active = True
    log = node.log
    if m.reject:
        next_probe = m.reject_hint
        if m.log_term > 0:
            next_probe, _ = log.find_conflict_by_term(m.reject_hint, m.log_term)
        if pr.maybe_decr_to(m.index, next_probe):
            if pr.state is REPLICATE:
                pr.become_probe()
            node.dirty[m.frm] = None
        return
    if pr.maybe_update(m.index) or (pr.match == m.index and pr.state is PROBE):
        if pr.state is PROBE:
            pr.become_replicate()
        elif pr.state is SNAPSHOT and pr.match + 1 >= log.first_index():
            pr.become_probe()
            pr.become_replicate()
        elif pr.state is REPLICATE:
            pr.inflights.free_le(m.index)
        if node._maybe_commit():
            node._on_commit_advanced()
        gone_at = node.departing.get(m.frm)
        if gone_at is not None and pr.match >= gone_at:
            _forget(node, m.frm)  # it holds its removal: it knows it is out
            return
        node.dirty[m.frm] = None
        if m.frm == node.lead_transferee and pr.match == log.last_index():
            node._send_timeout_now(m.frm)


def _handle_heartbeat_resp(node: "RaftNode", m: Message, pr: Progress) -> None:
    pr.recent_active = True
    pr.probes_paused = False
    if pr.match < node.log.last_index() or pr.state is PROBE:
        node.dirty[m.frm] = None
    if node.config.lease_reads and m.index >= node.lease_floor:
        _lease_ack(node, m.index, m.frm)
    if m.context:
        acks = node.read_queue.ack(m.frm, m.context)
        if acks is not None and len(acks & node.voters) >= quorum_size(len(node.voters)):
            for req in node.read_queue.advance(m.context):
                node._answer_read(req.ctx, req.frm, req.index)


def _forget(node: "RaftNode", pid: str) -> None:
    del node.departing[pid]
    del node.progress[pid]
    node.peers.remove(pid)


def _lease_ack(node: "RaftNode", sent_at: int, frm: str) -> None:
    """A follower acknowledged the heartbeat round sent at tick ``sent_at``; once a quorum
    has, the lease runs until ``sent_at + lease_ticks``."""
    acks = node.lease_acks.get(sent_at)
    if acks is None:
        acks = node.lease_acks[sent_at] = {node.id}
    acks.add(frm)
    if len(acks & node.voters) >= quorum_size(len(node.voters)):
        node.lease_until = max(node.lease_until, sent_at + node.config.lease_ticks)
        for r in [r for r in node.lease_acks if r <= sent_at]:
            del node.lease_acks[r]
    elif len(node.lease_acks) > 8:
        del node.lease_acks[min(node.lease_acks)]


def flush(node: "RaftNode", force_commit: bool = False) -> None:
    """Send the appends and read-confirming heartbeats decided since the last flush (a
    commit index alone is sent only without ``lazy_commit``, or with ``force_commit``)."""
    if node.dirty_all:
        targets = node.peers
    elif node.dirty:
        targets = [p for p in node.dirty if p in node.progress and p != node.id]
    else:
        targets = ()
    node.dirty = {}
    node.dirty_all = False
    bump = force_commit or not node.config.lazy_commit
    for pid in targets:
        while maybe_send_append(node, pid, bump):
            pass
    if node.read_bcast:
        node.read_bcast = False
        bcast_heartbeat(node, node.read_queue.last_ctx())


def maybe_send_append(node: "RaftNode", to: str, bump_commit: bool = True) -> bool:
    """Send one APP to ``to`` if flow control allows; True if something was sent."""
    pr = node.progress[to]
    log = node.log
    last, commit = log.last_index(), log.committed
    if not pr.should_send_app(last, commit, bump_commit):
        return False
    prev = pr.next - 1
    try:
        prev_term = log.term(prev)
    except Compacted:
        return _send_snapshot(node, to, pr)
    except Unavailable:
        pr.become_probe()
        return False
    ents: list = []
    if pr.can_send_entries(last):
        try:
            ents = log.entries(pr.next, node.config.max_msg_bytes)
        except Compacted:
            return _send_snapshot(node, to, pr)
    node._send(Message(MT.APP, to, node.id, node.term, log_term=prev_term, index=prev,
                       entries=tuple(ents), commit=commit))
    pr.sent_entries(len(ents), entries_size(ents) if ents else 0)
    pr.sent_commit(commit)
    return True


def _send_snapshot(node: "RaftNode", to: str, pr: Progress) -> bool:
    if not pr.recent_active:
        return False
    try:
        snap = node.log.storage.snapshot()
    except SnapshotTemporarilyUnavailable:
        return False
    pr.become_snapshot(snap.meta.index)
    node._send(Message(MT.SNAP, to, node.id, node.term, snapshot=snap))
    return True


def bcast_heartbeat(node: "RaftNode", ctx: bytes) -> None:
    committed = node.log.committed
    for pid in node.peers:
        pr = node.progress[pid]
        commit = min(pr.match, committed)  # never ahead of what the follower is known to hold
        node._send(Message(MT.HEARTBEAT, pid, node.id, node.term, index=node.ticks, commit=commit, context=ctx))
        pr.sent_commit(commit)


def step_down_removed(node: "RaftNode") -> None:
    """The configuration without this leader is committed: tell everyone the commit index,
    hand over to the most up-to-date voter if it has everything, then step down."""
    node.dirty_all = True
    flush(node, force_commit=True)
    last = node.log.last_index()
    best = max(sorted(node.voters), key=lambda v: node.progress[v].match, default="")
    if best and node.progress[best].match == last:
        node._send_timeout_now(best)
    node._become_follower(node.term, "")

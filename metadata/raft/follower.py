"""The follower's side of replication: APP, HEARTBEAT and SNAP from the leader, and
forwarding ReadIndex requests. Functions of a :class:`~metadata.raft.core.RaftNode`
(split from core.py for size).

Invariants: a follower never rewrites a committed entry (``RaftLog.maybe_append``
asserts it); every acknowledgement (APP_RESP) goes out only after the entries it covers
are persisted (it is a ``messages`` entry of the Ready carrying them); a configuration
entry takes effect as soon as it is appended and is undone if its entry is replaced.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from metadata.raft.confchange import ConfChange, ConfHistory
from metadata.raft.messages import Message, MessageType as MT
from metadata.raft.ready import ReadState
from metadata.raft.records import Entry, EntryKind, Snapshot

if TYPE_CHECKING:
    from metadata.raft.core import RaftNode


def step_follower(node: "RaftNode", m: Message) -> None:
    t = m.type
    if t is MT.APP or t is MT.HEARTBEAT or t is MT.SNAP:
        node.election_elapsed = 0
        node.lead = m.frm
        if t is MT.APP:
            handle_append(node, m)
        elif t is MT.HEARTBEAT:
            handle_heartbeat(node, m)
        else:
            handle_snapshot(node, m)
    elif t is MT.TIMEOUT_NOW:
        node._hup(transfer=True)
    elif t is MT.READ_INDEX:
        if node.lead:
            node._send(Message(MT.READ_INDEX, node.lead, m.frm, context=m.context))
    elif t is MT.READ_INDEX_RESP:
        node.read_states.append(ReadState(m.context, m.index))


def handle_append(node: "RaftNode", m: Message) -> None:
    """APP: append after a matching (index, log_term), else reject with a hint for fast
    backtracking: the last index at or below ``m.index`` whose term is at most
    ``m.log_term`` (the leader can skip everything after it)."""
    log = node.log
    if m.index < log.committed:
        node._send(Message(MT.APP_RESP, m.frm, node.id, node.term, index=log.committed))
        return
    last_new, conflict = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
    if last_new is not None:
        if conflict:
            log_rewritten(node, m.entries, conflict)
        node._send(Message(MT.APP_RESP, m.frm, node.id, node.term, index=last_new))
        return
    hint_index, hint_term = log.find_conflict_by_term(min(m.index, log.last_index()), m.log_term)
    node._send(Message(MT.APP_RESP, m.frm, node.id, node.term, index=m.index, reject=True,
                       reject_hint=hint_index, log_term=hint_term))


def log_rewritten(node: "RaftNode", entries: "tuple[Entry, ...]", first: int) -> None:
    """Entries from index ``first`` on were (re)written: update the configuration."""
    had = node.conf.current
    node.conf.truncate_from(first)
    for e in entries[first - entries[0].index:]:
        if e.kind is EntryKind.CONF:
            node.conf.push(e.index, ConfChange.decode(e.data))
    if node.conf.current != had:
        node._switch_config(node.conf.current)


def handle_heartbeat(node: "RaftNode", m: Message) -> None:
    if m.commit > node.log.committed:
        node.log.commit_to(m.commit)
    node._send(Message(MT.HEARTBEAT_RESP, m.frm, node.id, node.term, index=m.index, context=m.context))


def handle_snapshot(node: "RaftNode", m: Message) -> None:
    snap = m.snapshot
    if snap is not None and restore(node, snap):
        node._send(Message(MT.APP_RESP, m.frm, node.id, node.term, index=node.log.last_index()))
    else:
        node._send(Message(MT.APP_RESP, m.frm, node.id, node.term, index=node.log.committed))


def restore(node: "RaftNode", snap: Snapshot) -> bool:
    """Install a leader's snapshot unless we already hold its last entry (then only the
    commit index moves). The snapshot's configuration replaces ours: membership changes
    inside it were applied by the leader's state, changes after it follow in the log."""
    meta = snap.meta
    log = node.log
    if meta.index <= log.committed:
        return False
    if log.match_term(meta.index, meta.term):
        log.commit_to(meta.index)  # we have that entry already: just fast-forward
        return False
    log.restore(snap)
    node.conf = ConfHistory(meta.index, meta.conf_state)
    node._switch_config(meta.conf_state)
    return True

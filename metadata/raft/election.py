"""Elections: pre-vote, vote, the follower-side lease, and candidates counting votes.
Functions of a :class:`~metadata.raft.core.RaftNode` (split from core.py for size).

Pre-vote: a node that timed out first asks whether it *could* win (``PRE_VOTE`` for
``term + 1``, which changes no one's term or vote); only with a majority of grants does
it raise its term and ask for real votes. A partitioned node thus never inflates its
term and cannot depose a healthy leader when it rejoins.

Lease (check-quorum): a node that heard from a leader less than an election timeout ago
ignores (pre-)vote requests from other candidates, unless the election was started by
a leadership transfer (``CAMPAIGN_TRANSFER``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from metadata.raft.messages import CAMPAIGN_TRANSFER, Message, MessageType as MT
from metadata.raft.quorum import VoteResult, vote_result
from metadata.raft.ready import Role

if TYPE_CHECKING:
    from metadata.raft.core import RaftNode


def handle_vote(node: "RaftNode", m: Message) -> None:
    """Grant a (pre-)vote at most once per term, only to an up-to-date candidate; a
    granted vote is recorded in the hard state, so its response goes out after it is
    persisted (``messages``, never ``early_messages``)."""
    can_vote = (node.vote == m.frm or (node.vote == "" and node.lead == "")
                or (m.type is MT.PRE_VOTE and m.term > node.term))
    resp = MT.VOTE_RESP if m.type is MT.VOTE else MT.PRE_VOTE_RESP
    if can_vote and node._candidate_log_ok(m.index, m.log_term):
        # Answer with the message's term: a pre-vote is for a term we have not reached.
        node._send(Message(resp, m.frm, node.id, m.term))
        if m.type is MT.VOTE:
            node.election_elapsed = 0
            node.vote = m.frm
    else:
        node._send(Message(resp, m.frm, node.id, node.term, reject=True))


def in_lease(node: "RaftNode") -> bool:
    """Whether we promised a leader not to vote for anyone else yet: within an election
    timeout of hearing from it (check-quorum), and, with lease reads, during the first
    election timeout after a (re)start, since a restarted node forgot its promise."""
    cfg = node.config
    if not cfg.check_quorum:
        return False
    if node.lead != "" and node.election_elapsed < cfg.election_ticks:
        return True
    return cfg.lease_reads and node.ticks < cfg.election_ticks


def step_candidate(node: "RaftNode", m: Message) -> bool:
    """Handle ``m`` as a (pre-)candidate; True if we became a follower and ``m`` is now
    for the follower to handle (a leader of our term exists)."""
    t = m.type
    if t is MT.APP or t is MT.HEARTBEAT or t is MT.SNAP:
        node._become_follower(m.term, m.frm)  # m.term == node.term: that term has a leader
        return True
    elif t is (MT.PRE_VOTE_RESP if node.role is Role.PRE_CANDIDATE else MT.VOTE_RESP):
        node.votes[m.frm] = not m.reject
        result = vote_result(node.voters, node.votes)
        if result is VoteResult.WON:
            if node.role is Role.PRE_CANDIDATE:
                campaign(node, pre=False, transfer=False)
            else:
                node._become_leader()
        elif result is VoteResult.LOST:
            node._become_follower(node.term, "")
    return False


def hup(node: "RaftNode", transfer: bool) -> None:
    """Start an election if we may (a voter, not installing a snapshot, not leader);
    a transfer skips pre-vote and overrides the followers' lease."""
    if node.role is Role.LEADER or not node._promotable():
        return
    campaign(node, pre=node.config.pre_vote and not transfer, transfer=transfer)


def campaign(node: "RaftNode", pre: bool, transfer: bool) -> None:
    if pre:
        node.role = Role.PRE_CANDIDATE
        node.lead = ""
        node.votes = {}
        term, mtype = node.term + 1, MT.PRE_VOTE
    else:
        node._reset(node.term + 1)
        node.vote = node.id
        node.role = Role.CANDIDATE
        term, mtype = node.term, MT.VOTE
    node.votes[node.id] = True
    if vote_result(node.voters, node.votes) is VoteResult.WON:  # the only voter
        if pre:
            campaign(node, pre=False, transfer=False)
        else:
            node._become_leader()
        return
    last = node.log.last_index()
    last_term = node.log.term(last)
    ctx = CAMPAIGN_TRANSFER if transfer else b""
    for v in sorted(node.voters):
        if v != node.id:
            node._send(Message(mtype, v, node.id, term, index=last, log_term=last_term, context=ctx))

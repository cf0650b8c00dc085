"""Leadership transfer (TIMEOUT_NOW once the target is caught up, proposals refused
meanwhile, abandoned after an election timeout) and linearizable reads: ReadIndex on the
leader and forwarded from a follower, deferred until the new leader commits in its
term, never served by a deposed leader; optional lease reads."""
import pytest

from metadata.raft.errors import NotLeader, ProposalDropped
from metadata.raft.messages import Message, MessageType as MT
from metadata.raft.ready import Role
from metadata.raft.records import Entry
from tests.sim.network import Network


def reads(net, nid):
    return {rs.ctx: rs.index for rs in net.hosts[nid].read_states}


def test_transfer_to_a_caught_up_follower_is_immediate():
    net = Network(["a", "b", "c"])  # check-quorum on: the transfer election overrides the lease
    net.elect("a")
    term = net.node("a").term
    net.node("a").transfer_leadership("b")
    net.pump()
    assert net.leaders() == ["b"] and net.node("b").term == term + 1
    assert any(m.type is MT.TIMEOUT_NOW and m.to == "b" for m in net.delivered)


def test_transfer_waits_for_the_target_to_catch_up_and_refuses_proposals_meanwhile():
    net = Network(["a", "b", "c"])
    net.elect("a")
    net.filter = lambda m: not (m.to == "c" and m.type is MT.APP)
    for k in range(5):
        net.propose("a", b"v%d" % k)
    net.node("a").transfer_leadership("c")
    net.pump()
    assert net.leaders() == ["a"] and not any(m.type is MT.TIMEOUT_NOW for m in net.delivered)
    with pytest.raises(ProposalDropped):
        net.node("a").propose(b"refused")
    net.filter = None
    net.tick(1)  # the heartbeat response makes a send the missing entries; c catches up
    assert net.leaders() == ["c"]
    assert net.applied("c") == [b"v%d" % k for k in range(5)]


def test_a_transfer_that_cannot_finish_is_abandoned_after_an_election_timeout():
    net = Network(["a", "b", "c"])
    net.elect("a")
    net.isolate("c")
    net.propose("a", b"c-misses-this")
    net.node("a").transfer_leadership("c")
    assert net.node("a").lead_transferee == "c"
    net.tick(10, ids=["a", "b"])
    assert net.node("a").lead_transferee == "" and net.leaders() == ["a"]
    net.propose("a", b"accepted-again")
    assert net.applied("b")[-1] == b"accepted-again"


def test_transfer_requires_leader_and_voter():
    net = Network(["a", "b"], learners=["l"])
    net.elect("a")
    with pytest.raises(NotLeader):
        net.node("b").transfer_leadership("b")
    with pytest.raises(Exception, match="not a voter"):
        net.node("a").transfer_leadership("l")


def test_read_index_on_the_leader_needs_a_heartbeat_round():
    net = Network(["a", "b", "c"])
    net.elect("a")
    index, _ = net.propose("a", b"w")
    a = net.node("a")
    a.read_index(b"r1")
    rd = a.ready()
    assert rd.read_states == () and all(m.context == b"r1" for m in rd.early_messages if m.type is MT.HEARTBEAT)
    net.send(rd.early_messages + rd.messages)
    a.advance(rd)
    net.pump()
    assert reads(net, "a") == {b"r1": index}


def test_many_reads_share_one_heartbeat_round():
    net = Network(["a", "b", "c"])
    net.elect("a")
    sent = len(net.delivered)
    for k in range(10):
        net.node("a").read_index(b"r%d" % k)
    net.pump()
    assert set(reads(net, "a")) == {b"r%d" % k for k in range(10)}
    assert sum(1 for m in net.delivered[sent:] if m.type is MT.HEARTBEAT) == 2


def test_read_index_forwarded_from_a_follower():
    net = Network(["a", "b", "c"])
    net.elect("a")
    index, _ = net.propose("a", b"w")
    net.node("c").read_index(b"from-c")
    net.pump()
    assert reads(net, "c") == {b"from-c": index}
    assert any(m.type is MT.READ_INDEX and m.to == "a" for m in net.delivered)


def test_a_follower_without_a_leader_refuses_reads():
    net = Network(["a", "b", "c"])
    with pytest.raises(NotLeader):
        net.node("b").read_index(b"x")


def test_a_new_leader_serves_reads_only_after_committing_in_its_term():
    net = Network(["a", "b", "c"])
    net.drop_types.add(MT.APP_RESP)
    net.elect("a")  # its no-op is not committed yet
    net.node("a").read_index(b"early")
    net.pump()
    assert reads(net, "a") == {}
    net.drop_types.clear()
    net.tick(2)
    a = net.node("a")
    assert reads(net, "a") == {b"early": a.log.committed} and a.log.term(a.log.committed) == a.term


def test_a_deposed_leader_never_serves_a_stale_read():
    net = Network(["a", "b", "c"], check_quorum=False)
    net.elect("a")
    net.isolate("a")
    net.elect("b")
    index, _ = net.propose("b", b"written-after-a-lost-leadership")
    assert net.node("a").role is Role.LEADER  # it does not know yet
    net.node("a").read_index(b"stale?")
    net.tick(5, ids=["a"])
    assert reads(net, "a") == {}  # no quorum answers its heartbeats
    net.heal()
    net.tick(3)
    assert reads(net, "a") == {} and net.node("a").role is Role.FOLLOWER
    net.node("a").read_index(b"fresh")
    net.pump()
    assert reads(net, "a")[b"fresh"] >= index


def test_a_leader_cut_from_the_new_majority_gets_no_read_from_a_partial_quorum():
    net = Network("abcde", check_quorum=False)
    net.elect("a")
    net.cut_link("a", "c")
    net.cut_link("a", "d")
    net.cut_link("a", "e")
    net.elect("c")  # c, d, e move on (b still follows a until it hears of the new term)
    net.node("a").read_index(b"r")
    net.tick(3, ids=["a"])
    assert reads(net, "a") == {}  # only b answers: a and b are not a majority of five


def test_lease_reads_answer_at_once_while_the_lease_holds():
    net = Network(["a", "b", "c"], lease_reads=True)
    net.tick_until(lambda: len(net.leaders()) == 1, 100)  # nodes refuse votes for a timeout after start
    leader = net.leader()
    net.propose(leader, b"w")
    net.tick(1)  # a quorum acknowledges a heartbeat round: the lease starts
    node = net.node(leader)
    node.read_index(b"fast")
    rd = node.ready()
    assert [rs.ctx for rs in rd.read_states] == [b"fast"]
    net.send(rd.early_messages + rd.messages)
    node.advance(rd)
    net.isolate(leader)
    net.tick(net.node(leader).config.lease_ticks + 1, ids=[leader])
    node.read_index(b"after-lease")
    net.pump()
    assert b"after-lease" not in reads(net, leader)  # falls back to a heartbeat round, unanswered


def test_with_lease_reads_a_restarted_node_refuses_votes_for_an_election_timeout():
    net = Network(["a", "b", "c"], lease_reads=True)
    net.tick_until(lambda: len(net.leaders()) == 1, 100)
    other = next(i for i in "abc" if i != net.leader())
    net.crash(other)
    host = net.restart(other)
    term = host.node.term
    host.node.step(Message(MT.VOTE, other, "zz", term + 1, index=10**6, log_term=10**6))
    assert host.node.term == term and host.node.vote != "zz"


def test_even_a_single_voter_waits_for_its_first_commit_before_answering_reads():
    net = Network(["a"])
    disk = net.disks["a"]
    # A committed write that this node's hard state does not know committed yet (as after
    # the group shrank to this one voter before the commit index reached it).
    index = disk.last_index() + 1
    disk.append([Entry(index, 1, b"w")])
    net.restart("a")
    a = net.node("a")
    assert a.log.committed < index
    a.campaign()
    a.read_index(b"r")
    rd = a.ready()
    assert rd.read_states == ()
    net.disks["a"].append(rd.entries)
    a.advance(rd)  # the no-op is persisted: committed in its term, index included
    assert [(rs.ctx, rs.index >= index) for rs in a.ready().read_states] == [(b"r", True)]


def _leased_leader(net):
    net.tick_until(lambda: len(net.leaders()) == 1, 100)
    leader = net.leader()
    net.propose(leader, b"w")
    net.tick(1)  # a quorum acknowledges a heartbeat round: the lease starts
    return leader, net.node(leader)


def test_a_lease_the_drivers_clock_says_has_run_out_is_not_used_though_ticks_say_it_holds():
    # A leader paused (or whose loop stalled) counted too few ticks: by its ticks the lease
    # holds, by the clock it ran out, and the followers may have elected another leader.
    net = Network(["a", "b", "c"], lease_reads=True)
    leader, node = _leased_leader(net)
    asked = []
    node.lease_clock = lambda sent_at: asked.append(sent_at) or False
    net.isolate(leader)
    node.read_index(b"paused")
    net.pump()
    assert asked and asked[-1] == node.lease_until - node.config.lease_ticks
    assert b"paused" not in reads(net, leader)  # a heartbeat round instead, unanswered
    node.lease_clock = lambda sent_at: True
    node.read_index(b"clock-ok")
    net.pump()
    assert b"clock-ok" in reads(net, leader)


def test_a_leader_that_sent_timeout_now_trusts_no_lease_for_the_rest_of_its_term():
    # The TIMEOUT_NOW may reach the target after the transfer was abandoned; the target's
    # election then overrides the followers' promises, so no later heartbeat round may
    # give the old leader a lease in this term.
    net = Network(["a", "b", "c"], lease_reads=True)
    leader, node = _leased_leader(net)
    target = next(i for i in "abc" if i != leader)
    net.filter = lambda m: m.type is not MT.TIMEOUT_NOW  # delayed, not delivered
    node.transfer_leadership(target)
    net.pump()
    net.tick(2 * node.config.election_ticks)  # the transfer is abandoned; heartbeats go on
    assert node.lead_transferee == "" and net.leaders() == [leader]
    node.read_index(b"after-transfer")
    rd = node.ready()
    assert b"after-transfer" not in [rs.ctx for rs in rd.read_states]  # no lease: a heartbeat round
    net.send(rd.early_messages + rd.messages)
    node.advance(rd)
    net.pump()
    assert b"after-transfer" in reads(net, leader)  # answered by the round
    term = node.term
    net.filter = None
    node.transfer_leadership(target)  # a later term: its leader may hold a lease again
    net.pump()
    new = net.node(net.leader())
    assert new.term > term
    net.propose(net.leader(), b"w2")
    net.tick(1)
    new.read_index(b"new-term")
    assert b"new-term" in [rs.ctx for rs in new.ready().read_states]

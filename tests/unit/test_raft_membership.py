"""Membership changes one server at a time: learners that catch up and are promoted,
removals (a removed node stops participating; a removed leader steps down once the change
commits), one pending change at a time, configurations that take effect on append and
revert when their entry is truncated, and survive restarts and snapshots."""
import pytest

from metadata.raft.confchange import ConfChange, ConfChangeType as CC
from metadata.raft.errors import ConfChangeRejected, ProposalDropped
from metadata.raft.messages import Message, MessageType as MT
from metadata.raft.ready import Role
from tests.sim.network import Network


def change(net, leader, kind, nid):
    at = net.node(leader).propose_conf_change(ConfChange(kind, nid))
    net.pump()
    return at


def test_a_learner_catches_up_without_voting_then_is_promoted():
    net = Network(["a", "b", "c"])
    net.elect("a")
    for k in range(5):
        net.propose("a", b"v%d" % k)
    net.start("d")  # joins with an empty disk
    assert net.node("d").conf_state.members() == frozenset()
    change(net, "a", CC.ADD_LEARNER, "d")
    assert net.applied("d") == net.applied("a")
    assert net.node("d").learners == {"d"} and net.node("d").voters == {"a", "b", "c"}
    # A learner counts towards no quorum: with b and c down nothing commits.
    net.crash("b")
    net.crash("c")
    index, _ = net.propose("a", b"needs-a-voter")
    assert net.node("a").log.committed < index and net.node("d").log.last_index() == index
    net.restart("b")
    net.restart("c")
    net.tick(3)
    assert net.node("a").log.committed >= index
    assert net.node("a").progress["d"].match == net.node("a").log.last_index()
    change(net, "a", CC.ADD_VOTER, "d")
    assert all(net.node(i).voters == {"a", "b", "c", "d"} for i in "abcd")
    net.crash("b")
    net.crash("c")
    index, _ = net.propose("a", b"a-and-d-are-not-a-majority-of-4")
    assert net.node("a").log.committed < index
    net.restart("c")
    net.tick(3)
    assert net.node("a").log.committed >= index


def test_a_learner_never_campaigns():
    net = Network(["a", "b"], learners=["l"])
    net.elect("a")
    net.isolate("l")
    term = net.node("l").term
    net.tick(100, ids=["l"])
    assert net.node("l").role is Role.FOLLOWER and net.node("l").term == term
    net.node("l").step(Message(MT.TIMEOUT_NOW, "l", "a", term))  # nor does a TIMEOUT_NOW
    assert net.node("l").role is Role.FOLLOWER


def test_one_pending_change_at_a_time_and_only_after_the_first_commit_of_the_term():
    net = Network(["a", "b", "c"])
    net.drop_types.add(MT.APP_RESP)
    net.elect("a")  # elected, but its no-op is not committed
    with pytest.raises(ProposalDropped):
        net.node("a").propose_conf_change(ConfChange(CC.ADD_LEARNER, "d"))
    net.drop_types.clear()
    net.tick(2)
    net.node("a").propose_conf_change(ConfChange(CC.ADD_LEARNER, "d"))
    with pytest.raises(ProposalDropped):
        net.node("a").propose_conf_change(ConfChange(CC.ADD_LEARNER, "e"))
    net.pump()
    net.node("a").propose_conf_change(ConfChange(CC.ADD_LEARNER, "e"))  # the first one is committed


@pytest.mark.parametrize("cc", [ConfChange(CC.ADD_VOTER, "b"), ConfChange(CC.ADD_LEARNER, "b"),
                                ConfChange(CC.REMOVE, "zz"), ConfChange(CC.ADD_LEARNER, "l")])
def test_changes_that_make_no_sense_are_rejected(cc):
    net = Network(["a", "b"], learners=["l"])
    net.elect("a")
    with pytest.raises(ConfChangeRejected):
        net.node("a").propose_conf_change(cc)


def test_the_last_voter_cannot_be_removed():
    net = Network(["a"])
    net.elect("a")
    with pytest.raises(ConfChangeRejected):
        net.node("a").propose_conf_change(ConfChange(CC.REMOVE, "a"))


def test_a_removed_follower_stops_participating():
    net = Network(["a", "b", "c"])
    net.elect("a")
    change(net, "a", CC.REMOVE, "c")
    assert net.node("a").voters == {"a", "b"} and "c" not in net.node("a").progress
    assert net.node("c").voters == {"a", "b"}  # it got the entry: it knows it is out
    sent = len(net.delivered)
    net.tick(30)
    assert not any(m.to == "c" or m.frm == "c" for m in net.delivered[sent:])
    net.isolate("c")
    term = net.node("c").term
    net.tick(50, ids=["c"])
    assert net.node("c").role is Role.FOLLOWER and net.node("c").term == term
    net.heal()
    net.propose("a", b"two-voters-now")
    assert net.applied("b")[-1] == b"two-voters-now"


def test_a_leader_removing_itself_steps_down_once_the_change_commits():
    net = Network(["a", "b", "c"])
    net.elect("a")
    index, _ = net.node("a").propose_conf_change(ConfChange(CC.REMOVE, "a"))
    with pytest.raises(ProposalDropped):
        net.node("a").propose(b"refused: leaving")
    net.pump()
    a = net.node("a")
    assert a.role is Role.FOLLOWER and a.voters == {"b", "c"} and a.log.committed >= index
    # It handed over with TIMEOUT_NOW: a new leader without waiting for a timeout.
    assert len(net.leaders()) == 1 and net.leader() in "bc"
    net.propose(net.leader(), b"after")
    net.tick(30)
    assert net.node("a").role is Role.FOLLOWER and net.leaders() != ["a"]


def test_a_configuration_takes_effect_on_append_and_reverts_when_truncated():
    net = Network("abcde", check_quorum=False, pre_vote=False)
    net.elect("a")
    net.filter = lambda m: not (m.type is MT.APP and m.frm == "a" and m.to in "cde")
    index, _ = net.node("a").propose_conf_change(ConfChange(CC.ADD_LEARNER, "x"))
    net.pump()
    assert net.node("b").learners == {"x"} and net.node("a").log.committed < index  # uncommitted, in force
    net.filter = None
    net.isolate("a")
    net.elect("c")  # votes from c, d, e; its no-op replaces the change at b
    net.tick(2)
    assert net.node("b").log.term(index) == net.node("c").term
    assert net.node("b").learners == frozenset() and net.node("c").learners == frozenset()


def test_membership_survives_restarts_and_snapshots():
    net = Network(["a", "b", "c"])
    net.elect("a")
    net.start("d")
    change(net, "a", CC.ADD_LEARNER, "d")
    change(net, "a", CC.ADD_VOTER, "d")
    change(net, "a", CC.REMOVE, "b")
    net.crash("b")
    expected = net.node("a").conf_state
    for k in range(5):
        net.propose("a", b"v%d" % k)
    net.hosts["c"].take_snapshot()  # compacts the change entries away on c
    assert net.disks["c"].first_index() > 5
    for nid in "acd":
        net.crash(nid)
        net.restart(nid)
        assert net.node(nid).conf_state == expected
    net.tick_until(lambda: len(net.leaders()) == 1, 100)


def test_a_node_joining_after_compaction_learns_the_membership_from_the_snapshot():
    net = Network(["a", "b", "c"])
    net.elect("a")
    for k in range(5):
        net.propose("a", b"v%d" % k)
    net.hosts["a"].take_snapshot()
    net.start("d")
    change(net, "a", CC.ADD_LEARNER, "d")
    net.tick(3)
    assert any(m.type is MT.SNAP and m.to == "d" for m in net.delivered)
    assert net.node("d").conf_state == net.node("a").conf_state
    assert net.applied("d") == net.applied("a")


def test_a_pair_can_always_finish_removing_its_leader():
    net = Network(["a", "b"], check_quorum=False)
    net.elect("a")
    net.filter = lambda m: not (m.type is MT.APP and m.to == "b")
    index, _ = net.node("a").propose_conf_change(ConfChange(CC.REMOVE, "a"))
    net.pump()  # only a holds the change: a's configuration is {b}, b's is still {a, b}
    net.crash("a")
    net.restart("a")
    net.filter = None
    assert net.node("a").voters == {"b"} and net.node("b").voters == {"a", "b"}
    # b cannot win without a, whose log is longer; a, removed by an uncommitted change,
    # stands, wins b's vote, commits the change and hands over.
    net.tick_until(lambda: net.leaders() == ["b"] and net.node("b").voters == {"b"}, 100)
    assert net.node("b").log.committed >= index and net.node("a").role is Role.FOLLOWER
    net.propose("b", b"alone")
    net.tick(30)
    assert net.leaders() == ["b"] and net.node("a").log.committed >= index

"""Leader election: randomized timeouts from the injected rng, the election restriction,
durable votes, pre-vote protecting a healthy leader from a rejoining partitioned node,
check-quorum stepping down an isolated leader, and the follower-side lease."""
import random

from metadata.raft.config import RaftConfig
from metadata.raft.core import RaftNode
from metadata.raft.messages import Message, MessageType as MT
from metadata.raft.ready import Role
from metadata.raft.storage import MemoryStorage
from tests.sim.network import Network


def test_single_node_elects_itself_and_commits():
    net = Network(["a"])
    net.tick_until(lambda: net.node("a").role is Role.LEADER, 30)
    net.propose("a", b"x")
    assert net.applied("a") == [b"x"]


def test_three_nodes_agree_on_one_leader():
    net = Network(["a", "b", "c"], seed=3)
    net.tick_until(lambda: len(net.leaders()) == 1, 60)
    leader = net.leader()
    assert {net.node(i).lead for i in "abc"} == {leader}
    assert len({net.node(i).term for i in "abc"}) == 1


def test_elections_are_reproducible_from_the_seed():
    def history(seed):
        net = Network(["a", "b", "c", "d", "e"], seed=seed)
        out = []
        for _ in range(3):  # elect, crash the leader, twice: 3 of 5 nodes remain
            net.tick_until(lambda: len(net.leaders()) == 1, 100)
            out.append((net.leader(), net.node(net.leader()).term))
            if len(net.hosts) > 3:
                net.crash(net.leader())
        return out
    assert history(11) == history(11)
    assert len({tuple(history(s)) for s in range(6)}) > 1  # the seed matters


def test_randomized_timeout_is_in_range_and_drawn_from_the_injected_rng():
    node = RaftNode(RaftConfig("a", election_ticks=10), MemoryStorage.bootstrapped(["a", "b"]), random.Random(5))
    same = RaftNode(RaftConfig("a", election_ticks=10), MemoryStorage.bootstrapped(["a", "b"]), random.Random(5))
    seen = set()
    for _ in range(50):
        node._reset(node.term)
        same._reset(same.term)
        assert node.randomized_timeout == same.randomized_timeout
        seen.add(node.randomized_timeout)
    assert min(seen) >= 10 and max(seen) <= 19 and len(seen) > 3


def test_candidate_with_a_stale_log_loses():
    net = Network(["a", "b", "c"], check_quorum=False)
    net.elect("a")
    net.filter = lambda m: not (m.to == "c" and m.type is MT.APP)
    net.propose("a", b"committed-without-c")
    assert net.node("a").log.committed == net.node("b").log.committed > net.node("c").log.committed
    net.filter = None
    net.crash("a")
    net.node("c").campaign()
    net.pump()
    assert net.node("c").role is not Role.LEADER  # b refuses: c lacks a committed entry
    net.elect("b")
    assert net.applied("b") == [b"committed-without-c"]


def test_vote_is_persisted_before_the_response_is_sent():
    net = Network(["a", "b", "c"], pre_vote=False)
    net.node("a").campaign()
    rd = net.node("a").ready()  # the candidate: term+1 and its own vote, then the requests
    assert rd.hard_state.vote == "a" and rd.must_sync
    assert not rd.early_messages and {m.type for m in rd.messages} == {MT.VOTE}
    req = next(m for m in rd.messages if m.to == "b")
    b = net.node("b")
    b.step(req)
    rd_b = b.ready()
    assert rd_b.hard_state.vote == "a" and rd_b.must_sync
    assert [m.type for m in rd_b.messages] == [MT.VOTE_RESP] and not rd_b.messages[0].reject
    assert not rd_b.early_messages


def test_a_restarted_node_remembers_its_vote():
    net = Network(["a", "b", "c"], pre_vote=False, check_quorum=False)
    net.cut_link("a", "c")
    net.node("a").campaign()
    net.pump()  # b votes for a
    assert net.node("b").vote == "a"
    term = net.node("b").term
    net.crash("b")
    net.restart("b")
    b = net.node("b")
    assert (b.term, b.vote) == (term, "a")
    b.step(Message(MT.VOTE, "b", "c", term, index=99, log_term=99))
    resp = b.ready().messages[-1]
    assert resp.type is MT.VOTE_RESP and resp.reject  # already voted in this term


def test_pre_vote_keeps_a_rejoining_partitioned_node_from_disrupting_the_leader():
    net = Network(["a", "b", "c"], pre_vote=True, check_quorum=True)
    net.elect("a")
    term = net.node("a").term
    net.isolate("c")
    net.tick(100)
    assert net.node("c").term == term  # pre-votes fail, the term does not move
    assert net.node("c").role in (Role.FOLLOWER, Role.PRE_CANDIDATE)
    net.heal()
    net.tick(5)
    assert net.leader() == "a" and net.node("a").term == term
    net.propose("a", b"after")
    assert net.applied("c")[-1] == b"after"


def test_without_pre_vote_the_same_rejoin_deposes_the_leader():
    net = Network(["a", "b", "c"], pre_vote=False, check_quorum=False)
    net.elect("a")
    term = net.node("a").term
    net.isolate("c")
    net.tick(100)
    assert net.node("c").term > term + 3  # it kept campaigning
    net.heal()
    net.tick(30)
    assert net.node(net.leader()).term > term  # the healthy leader was disrupted


def test_check_quorum_steps_down_an_isolated_leader():
    net = Network(["a", "b", "c"], check_quorum=True)
    net.elect("a")
    net.isolate("a")
    net.tick(2 * 10 + 1, ids=["a"])
    assert net.node("a").role is Role.FOLLOWER
    net.tick_until(lambda: any(net.node(i).role is Role.LEADER for i in "bc"), 100)


def test_without_check_quorum_an_isolated_leader_stays_leader():
    net = Network(["a", "b", "c"], check_quorum=False)
    net.elect("a")
    net.isolate("a")
    net.tick(50, ids=["a"])
    assert net.node("a").role is Role.LEADER


def test_followers_in_lease_ignore_a_disruptive_vote_request():
    net = Network(["a", "b", "c"], check_quorum=True, pre_vote=False)
    net.elect("a")
    b = net.node("b")
    term = b.term
    b.step(Message(MT.VOTE, "b", "c", term + 5, index=100, log_term=term + 4))
    assert b.term == term and b.vote != "c" and not b.has_ready()
    net.tick(12, ids=["b"])  # b hears nothing from a for an election timeout: lease over
    b.step(Message(MT.VOTE, "b", "c", term + 5, index=100, log_term=term + 4))
    assert b.term == term + 5 and b.vote == "c"


def test_a_stale_leader_learns_the_new_term_and_steps_down():
    net = Network(["a", "b", "c"], check_quorum=False)
    net.elect("a")
    net.isolate("a")
    net.elect("b")
    net.heal()
    net.tick(3)
    assert net.leaders() == ["b"] and net.node("a").term == net.node("b").term

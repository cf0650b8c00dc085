"""Log replication: batching and pipelining, the leader persisting in parallel with
sending, conflict repair with fast backtracking, the Figure 8 commit rule, snapshots for
followers behind the compaction point, and crashes losing only unpersisted state."""
from metadata.raft.core import RaftNode
from metadata.raft.messages import MessageType as MT
from metadata.raft.progress import ProgressState
from metadata.raft.ready import Role
from metadata.raft.records import Entry, HardState
from metadata.raft.storage import MemoryStorage, bootstrap_entries
from tests.sim.host import CRASH_BEFORE_PERSIST, CRASH_MID_PERSIST
from tests.sim.network import Network


def test_proposals_between_two_readies_travel_in_one_message_per_follower():
    net = Network(["a", "b", "c"])
    net.elect("a")
    a = net.node("a")
    for k in range(50):
        a.propose(b"cmd%d" % k)
    rd = a.ready()
    apps = [m for m in rd.early_messages if m.type is MT.APP]
    assert sorted(m.to for m in apps) == ["b", "c"] and all(len(m.entries) == 50 for m in apps)
    net.disks["a"].append(rd.entries)  # the rest of the cycle, by hand
    net.send(rd.early_messages + rd.messages)
    a.advance(rd)
    net.pump()
    assert net.applied("b") == [b"cmd%d" % k for k in range(50)] == net.applied("a")


def test_message_size_and_inflight_window_bound_the_pipeline():
    net = Network(["a", "b"], max_msg_bytes=10, max_inflight_msgs=3)
    net.elect("a")
    a = net.node("a")
    for k in range(10):
        a.propose(b"%010d" % k)  # 10 bytes: one entry per message
    rd = a.ready()
    apps = [m for m in rd.early_messages if m.type is MT.APP and m.to == "b"]
    assert [len(m.entries) for m in apps] == [1, 1, 1]  # the window is full
    assert a.progress["b"].state is ProgressState.REPLICATE and a.progress["b"].inflights.full()
    net.disks["a"].append(rd.entries)
    net.send(rd.early_messages + rd.messages)
    a.advance(rd)
    net.pump()  # acknowledgements open the window again until everything is through
    assert len(net.applied("b")) == 10 and a.progress["b"].match == a.log.last_index()


def test_leader_sends_before_persisting_but_counts_itself_only_once_persisted():
    net = Network(["a", "b", "c"])
    net.elect("a")
    a = net.node("a")
    index, _ = a.propose(b"x")
    rd = a.ready()
    assert [e.index for e in rd.entries] == [index]
    assert {m.to for m in rd.early_messages if m.type is MT.APP} == {"b", "c"}
    # Followers acknowledge before the leader persisted: one follower is not a quorum
    # without the leader's own (unpersisted) copy.
    b = net.node("b")
    for m in rd.early_messages:
        if m.to == "b":
            b.step(m)
    net.hosts["b"].process_ready(lambda ms: [a.step(m) for m in ms])
    assert a.progress["b"].match == index and a.log.committed < index
    net.disks["a"].append(rd.entries)
    a.advance(rd)  # now persisted: a and b form a quorum
    assert a.log.committed == index


def test_no_early_messages_while_the_term_is_not_yet_durable():
    net = Network(["a"], learners=["l"])
    a = net.node("a")
    a.campaign()  # the only voter: candidate and leader at once, with a learner to feed
    rd = a.ready()
    assert a.role is Role.LEADER and rd.hard_state.term == a.term
    assert rd.early_messages == () and any(m.type is MT.APP and m.to == "l" for m in rd.messages)


def _storage(terms, hs_term, voters=("a", "b", "c")):
    boot, _ = bootstrap_entries(list(voters))
    st = MemoryStorage()
    st.append(boot + [Entry(len(boot) + 1 + i, t, b"t%d" % t) for i, t in enumerate(terms)])
    st.set_hard_state(HardState(hs_term, "", len(boot)))
    return st


def test_a_long_divergent_follower_log_is_repaired_with_few_probes():
    net = Network(["a", "b", "c"], check_quorum=False, pre_vote=False)
    # The leader's log after the bootstrap: terms 2 2 4; the follower b: twenty entries of term 3.
    for nid, st in (("a", _storage([2, 2, 4], 4)), ("c", _storage([2, 2, 4], 4)), ("b", _storage([3] * 20, 3))):
        net.disks[nid] = st
        net.restart(nid)
    net.elect("a")
    net.pump()
    rejections = [m for m in net.delivered if m.type is MT.APP_RESP and m.frm == "b" and m.reject]
    assert 1 <= len(rejections) <= 3  # one probe per divergent term, not one per entry
    assert [e.term for e in net.disks["b"].entries(4, net.disks["b"].last_index() + 1)] == [2, 2, 4, 5]


class _CommitsOldTerms(RaftNode):
    """Broken on purpose: commits an entry of an older term by counting replicas."""

    def _commit_allowed(self, index):
        return self.log.term_or_zero(index) > 0


def _figure_8(node_cls):
    """Raft paper, Figure 8, with five nodes a..e; returns the network at the end."""
    net = Network("abcde", check_quorum=False, pre_vote=False, max_msg_bytes=1, node_cls=node_cls)
    net.elect("a")  # term 2
    net.filter = lambda m: not (m.type is MT.APP and m.frm == "a" and m.to in "cde")
    x_index, _ = net.propose("a", b"XXXX")  # on a and b only
    net.isolate("a")
    net.filter = lambda m: not (m.type is MT.APP and m.frm == "e")
    net.elect("e")  # term 3, voted by c and d; its no-op at x_index stays on e alone
    assert net.node("e").log.term(x_index) == 3
    net.heal()
    net.isolate("e")
    net.crash("a")  # as S1 in the figure: a crashes and restarts
    net.restart("a")
    # c and d get X but lose every APP carrying a's new no-op once they hold X.
    net.filter = lambda m: not (m.type is MT.APP and m.to in "cd" and any(e.index > x_index for e in m.entries)
                                and net.node(m.to).log.match_term(x_index, 2))
    for _ in range(3):  # the first attempt learns term 3 and loses
        net.node("a").campaign()
        net.pump()
    assert net.node("a").role is Role.LEADER and net.node("a").term == 4
    # X (term 2) is now on a majority (a, b, c, d); a's own no-op (term 4) on a and b only.
    assert all(net.node(i).log.term(x_index) == 2 for i in "abcd")
    committed_x = net.node("a").log.committed >= x_index
    net.heal()
    net.isolate("a")
    net.crash("e")
    net.restart("e")
    net.filter = lambda m: not (m.type is MT.APP and m.frm == "e")  # stop right after the election
    for _ in range(3):
        net.node("e").campaign()
        net.pump()
    assert net.node("e").role is Role.LEADER  # its last term 3 beats c's and d's term 2
    return net, x_index, committed_x


def test_figure_8_a_leader_never_commits_an_old_term_entry_by_counting():
    net, x_index, committed_x = _figure_8(RaftNode)
    assert not committed_x and net.node("e").log.committed < x_index
    assert (x_index, b"XXXX") not in net.hosts["a"].applied  # never applied: it was not committed
    net.filter = None
    net.propose("e", b"after")
    net.heal()
    net.tick(3)
    assert net.applied("a") == net.applied("b") == net.applied("e") and net.applied("a")[-1] == b"after"


def test_figure_8_without_the_rule_a_committed_entry_is_lost():
    net, x_index, committed_x = _figure_8(_CommitsOldTerms)
    assert committed_x and (x_index, b"XXXX") in net.hosts["a"].applied
    # The new leader has another entry at that index and will impose it: safety is gone.
    assert net.node("e").log.term(x_index) == 3


def test_a_follower_behind_the_compaction_point_gets_a_snapshot():
    net = Network(["a", "b", "c"])
    net.elect("a")
    net.crash("c")
    for k in range(20):
        net.propose("a", b"v%d" % k)
    assert net.hosts["a"].take_snapshot(keep=2)
    assert net.disks["a"].first_index() > net.disks["c"].last_index() + 1
    net.restart("c")
    net.tick(3)
    snaps = [m for m in net.delivered if m.type is MT.SNAP and m.to == "c"]
    assert len(snaps) == 1
    assert net.disks["c"].snapshot().meta.index == snaps[0].snapshot.meta.index
    assert net.applied("c") == net.applied("a")  # state from the snapshot, the rest from the log
    net.propose("a", b"more")
    assert net.applied("c")[-1] == b"more" and net.node("a").progress["c"].state is ProgressState.REPLICATE


def test_a_snapshot_transfer_that_failed_is_retried():
    net = Network(["a", "b", "c"])
    net.elect("a")
    net.crash("c")
    for k in range(5):
        net.propose("a", b"v%d" % k)
    net.hosts["a"].take_snapshot()
    net.restart("c")
    net.drop_types.add(MT.SNAP)
    net.tick(2)
    assert net.node("a").progress["c"].state is ProgressState.SNAPSHOT
    net.node("a").report_snapshot("c", ok=False)
    net.drop_types.clear()
    net.tick(3)
    assert net.applied("c") == net.applied("a")


def test_a_crash_loses_exactly_what_was_not_persisted():
    net = Network(["a", "b", "c"])
    net.elect("a")
    net.propose("a", b"one")
    a = net.node("a")
    a.propose(b"two")
    a.propose(b"three")
    b_host = net.hosts["b"]
    net.send(a.ready().early_messages)  # the leader crashes right after sending
    net.crash("a")
    for m in list(net.in_flight):
        if m.to == "b":
            net.in_flight.remove(m)
            b_host.node.step(m)
    assert not b_host.process_ready(net.send, crash_at=CRASH_MID_PERSIST)  # entries written, hard state not
    net.crash("b")
    assert [e.data for e in net.disks["b"].entries(net.disks["b"].last_index() - 1, net.disks["b"].last_index() + 1)
            ] == [b"two", b"three"]
    assert [e.data for e in net.disks["a"].entries(1, net.disks["a"].last_index() + 1)][-1] == b"one"
    net.restart("a")
    net.restart("b")
    net.tick_until(lambda: len(net.leaders()) == 1, 100)
    leader = net.leader()
    net.propose(leader, b"four")
    logs = {i: net.applied(i) for i in "abc"}
    assert logs["a"] == logs["b"] == logs["c"]
    assert logs["a"][0] == b"one" and logs["a"][-1] == b"four"


def test_a_restarted_node_reapplies_committed_entries_after_its_snapshot():
    net = Network(["a", "b", "c"])
    net.elect("a")
    for k in range(6):
        net.propose("a", b"v%d" % k)
    net.hosts["b"].take_snapshot()
    net.propose("a", b"v6")
    before = net.applied("b")
    net.crash("b")
    host = net.restart("b")
    assert host.fsm_index == net.disks["b"].snapshot().meta.index
    net.tick(2)
    assert net.applied("b") == before


def test_crash_before_persisting_a_vote_forgets_it():
    net = Network(["a", "b", "c"], pre_vote=False)
    net.node("a").campaign()
    rd = net.node("a").ready()
    for m in rd.messages:
        if m.to == "b":
            net.node("b").step(m)
    assert not net.hosts["b"].process_ready(net.send, crash_at=CRASH_BEFORE_PERSIST)
    net.crash("b")
    net.restart("b")
    assert net.node("b").vote == ""  # nothing was promised: the response never left



def _apps_for_one_proposal(lazy: bool) -> tuple[Network, list[int]]:
    """The network after one proposal went through, and the commit index carried by each
    APP the leader sent for it."""
    net = Network(["a", "b", "c"], heartbeat_ticks=2, lazy_commit=lazy)
    net.elect("a")
    net.tick(2)  # followers learn the election's commit
    seen = len(net.delivered)
    net.propose("a", b"x")
    return net, [m.commit for m in net.delivered[seen:] if m.type is MT.APP]


def test_without_lazy_commit_a_new_commit_index_goes_out_at_once():
    net, commits = _apps_for_one_proposal(lazy=False)
    a = net.node("a")
    assert commits.count(a.log.committed) == 2  # an APP of its own to each follower
    assert net.node("b").log.committed == net.node("c").log.committed == a.log.committed
    assert net.applied("b")[-1] == b"x"


def test_lazy_commit_tells_followers_with_the_next_heartbeat():
    net, commits = _apps_for_one_proposal(lazy=True)
    a, b = net.node("a"), net.node("b")
    assert len(commits) == 2 and a.log.committed not in commits  # only the entries went out
    assert b.log.committed < a.log.committed and b"x" not in net.applied("b")
    net.tick(2)  # one heartbeat interval
    assert b.log.committed == net.node("c").log.committed == a.log.committed
    assert net.applied("b")[-1] == b"x" and net.applied("c")[-1] == b"x"


def test_lazy_commit_rides_on_the_next_entries():
    net, _ = _apps_for_one_proposal(lazy=True)
    a = net.node("a")
    first_commit = a.log.committed
    net.propose("a", b"y")
    assert net.node("b").log.committed >= first_commit and b"x" in net.applied("b")

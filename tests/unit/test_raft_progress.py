"""Flow control (probe / replicate / snapshot), in-flight windows and quorum arithmetic."""
from metadata.raft.progress import Inflights, Progress, ProgressState
from metadata.raft.quorum import VoteResult, committed_index, vote_result


def test_probe_sends_one_message_then_waits():
    pr = Progress(11, max_inflight=4, max_inflight_bytes=0, is_learner=False)
    assert pr.state is ProgressState.PROBE and pr.should_send_app(20, 5)
    pr.sent_entries(3, 30)
    assert pr.next == 11 and not pr.should_send_app(20, 5)  # probing: next does not move
    assert pr.maybe_decr_to(10, 6)  # rejected at 10, hint 6
    assert pr.next == 7 and pr.should_send_app(20, 5)
    assert not pr.maybe_decr_to(10, 3)  # a stale rejection (we now probe at 6)


def test_replicate_pipelines_up_to_the_inflight_window():
    pr = Progress(1, max_inflight=2, max_inflight_bytes=0, is_learner=False)
    pr.maybe_update(5)
    pr.become_replicate()
    assert pr.next == 6
    pr.sent_entries(2, 20)
    pr.sent_entries(2, 20)
    assert pr.next == 10 and pr.inflights.full() and not pr.can_send_entries(20)
    pr.maybe_update(7)
    pr.inflights.free_le(7)
    assert not pr.inflights.full() and pr.can_send_entries(20)
    assert pr.maybe_decr_to(9, 0) and pr.next == 8  # a real rejection: back to match + 1
    assert not pr.maybe_decr_to(6, 0)  # at or below match: stale


def test_snapshot_state_pauses_until_reported():
    pr = Progress(1, 4, 0, False)
    pr.become_snapshot(50)
    assert not pr.should_send_app(100, 60)
    pr.become_probe()
    assert pr.next == 51 and pr.state is ProgressState.PROBE


def test_inflights_byte_limit():
    inf = Inflights(100, 50)
    inf.add(1, 30)
    assert not inf.full()
    inf.add(2, 30)
    assert inf.full()
    inf.free_le(1)
    assert not inf.full() and inf.bytes == 30


def test_quorum_commit_index_and_votes():
    assert committed_index([5, 3, 9]) == 5
    assert committed_index([5, 3, 9, 7]) == 5
    assert committed_index([4]) == 4
    assert committed_index([]) == 0
    voters = frozenset({"a", "b", "c"})
    assert vote_result(voters, {"a": True}) is VoteResult.PENDING
    assert vote_result(voters, {"a": True, "b": True}) is VoteResult.WON
    assert vote_result(voters, {"a": True, "b": False, "c": False}) is VoteResult.LOST
    assert vote_result(voters, {"x": True, "y": True, "a": True}) is VoteResult.PENDING  # non-voters do not count

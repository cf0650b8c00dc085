"""The core's log (storage + unstable tail) and MemoryStorage: appends that replace a
conflicting suffix, never a committed entry; size-limited reads across the storage and
unstable parts; compaction; fast-backtracking search; stability tracking."""
import pytest

from metadata.raft.errors import Compacted, Unavailable
from metadata.raft.raftlog import RaftLog
from metadata.raft.records import ConfState, Entry, Snapshot, SnapshotMeta
from metadata.raft.storage import MemoryStorage, bootstrap_entries


def ents(first, *terms, size=1):
    return [Entry(first + i, t, b"x" * size) for i, t in enumerate(terms)]


def test_memory_storage_append_truncates_compacts_and_reports_bounds():
    st = MemoryStorage()
    st.append(ents(1, 1, 1, 2, 2))
    assert (st.first_index(), st.last_index(), st.term(3)) == (1, 4, 2)
    st.append(ents(3, 3))  # replaces 3 and 4
    assert st.last_index() == 3 and st.term(3) == 3
    with pytest.raises(ValueError):
        st.append(ents(9, 3))  # a gap
    st.create_snapshot(2, ConfState(frozenset({"a"})), b"state")
    st.compact(2)
    assert st.first_index() == 3 and st.term(2) == 1
    with pytest.raises(Compacted):
        st.term(1)
    with pytest.raises(Compacted):
        st.entries(2, 4)
    with pytest.raises(Unavailable):
        st.term(4)
    with pytest.raises(ValueError):
        st.compact(3)  # beyond the snapshot
    st.apply_snapshot(Snapshot(SnapshotMeta(10, 5, ConfState()), b"new"))
    assert (st.first_index(), st.last_index(), st.term(10)) == (11, 10, 5)


def test_entries_are_limited_by_bytes_but_never_empty():
    st = MemoryStorage()
    st.append(ents(1, 1, 1, 1, 1, size=10))
    assert len(st.entries(1, 5, max_bytes=25)) == 2
    assert len(st.entries(1, 5, max_bytes=1)) == 1
    assert len(st.entries(1, 5)) == 4


def test_raft_log_reads_span_storage_and_unstable():
    st = MemoryStorage()
    st.append(ents(1, 1, 1, 1, size=10))
    log = RaftLog(st, 1 << 20)
    log.append(ents(4, 2, 2, size=10))
    assert log.last_index() == 5 and log.term(5) == 2
    assert [e.index for e in log.slice(2, 6, None)] == [2, 3, 4, 5]
    assert [e.index for e in log.slice(2, 6, 35)] == [2, 3, 4]
    assert [e.index for e in log.slice(3, 6, 15)] == [3]
    with pytest.raises(Unavailable):
        log.term(6)


def test_maybe_append_replaces_only_the_conflicting_suffix():
    st = MemoryStorage()
    st.append(ents(1, 1, 1, 2, 2))
    log = RaftLog(st, 1 << 20)
    log.committed = 2
    # Mismatch at the previous entry: refused.
    assert log.maybe_append(4, 3, 2, tuple(ents(5, 3))) == (None, 0)
    # Entries already present: nothing rewritten, commit follows min(leader commit, last new).
    assert log.maybe_append(1, 1, 3, tuple(ents(2, 1, 2))) == (3, 0)
    assert log.committed == 3 and log.unstable == []
    # A conflict at 4: the suffix from 4 is replaced.
    last, conflict = log.maybe_append(3, 2, 3, tuple(ents(4, 3, 3)))
    assert (last, conflict) == (5, 4) and log.term(4) == 3 and log.last_index() == 5
    with pytest.raises(AssertionError):
        log.maybe_append(1, 1, 3, tuple(ents(2, 9)))  # would rewrite committed entry 2


def test_find_conflict_by_term_skips_a_whole_divergent_term():
    st = MemoryStorage()
    st.append(ents(1, 1, 3, 3, 4, 4, 5, 5, 5, 6))  # the follower of etcd's example
    log = RaftLog(st, 1 << 20)
    assert log.find_conflict_by_term(8, 3) == (3, 3)
    assert log.find_conflict_by_term(9, 6) == (9, 6)
    assert log.find_conflict_by_term(9, 0) == (0, 0)
    assert log.find_conflict_by_term(50, 4) == (5, 4)  # beyond the log: from the last index


def test_stable_to_ignores_entries_rewritten_since_the_ready():
    log = RaftLog(MemoryStorage(), 1 << 20)
    log.append(ents(1, 1, 1, 1))
    log.append(ents(3, 2))  # 3 rewritten before the driver persisted the old one
    log.stable_to(3, 1)
    assert log.offset == 1 and len(log.unstable) == 3
    log.stable_to(2, 1)
    assert log.offset == 3 and [e.term for e in log.unstable] == [2]


def test_committed_entries_wait_while_a_snapshot_is_pending():
    log = RaftLog(MemoryStorage(), 1 << 20)
    log.append(ents(1, 1, 1))
    log.commit_to(2)
    assert [e.index for e in log.next_committed()] == [1, 2]
    log.restore(Snapshot(SnapshotMeta(10, 3, ConfState()), b"s"))
    assert log.next_committed() == [] and log.first_index() == 11 and log.last_index() == 10
    with pytest.raises(Compacted):
        log.term(9)


def test_bootstrap_entries_are_identical_for_every_member():
    a, hs = bootstrap_entries(["m3", "m1", "m2"], ["m9"])
    b, _ = bootstrap_entries(["m1", "m2", "m3"], ["m9"])
    assert a == b and hs.commit == 4 and hs.term == 1 and [e.term for e in a] == [1, 1, 1, 1]
    with pytest.raises(ValueError):
        bootstrap_entries([])

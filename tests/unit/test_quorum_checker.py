"""The quorum and one checkers on hand-made histories: what they accept, and that they bite."""
from __future__ import annotations

from tests.linearizability.history import Op
from tests.linearizability.quorum import check_one, check_quorum


def put(value, index, call, ret, client=0, ok=True):
    return Op(client, "put", "k", value, index if ok else None, call, ret, ok)


def delete(index, call, ret, ok=True):
    return Op(9, "delete", "k", None, index if ok else None, call, ret, ok)


def get(value, call, ret, client=1):
    return Op(client, "get", "k", None, value, call, ret, True)


def test_the_newest_acknowledged_write_by_commit_index_passes():
    # "big" started first but committed last (index 7 > 5): it is the newer one.
    h = [put("big", 7, 0.0, 3.0), put("small", 5, 1.0, 2.0, client=2), get("big", 4.0, 4.1)]
    assert check_quorum(h).ok


def test_a_read_older_than_an_acknowledged_write_fails_quorum_but_not_one():
    h = [put("a", 3, 0.0, 1.0), put("b", 4, 1.5, 2.0), get("a", 2.5, 2.6)]
    result = check_quorum(h)
    assert not result.ok and "older than" in result.violations[0].reason
    one = check_one(h)
    assert one.ok and one.percentile(50) == 0.5


def test_ordering_by_version_time_instead_of_commit_index_is_caught():
    # The later-acknowledged write committed first: reading it after both acks is stale.
    h = [put("big", 7, 0.0, 3.0), put("small", 5, 1.0, 2.0, client=2), get("small", 4.0, 4.1)]
    assert not check_quorum(h).ok


def test_concurrent_and_unknown_writes_may_be_read():
    h = [put("a", 3, 0.0, 1.0), put("b", 4, 1.5, 3.0), put("c", None, 1.6, 9.0, ok=None), get("a", 2.0, 2.1),
         get("b", 2.2, 2.3), get("c", 3.5, 3.6)]
    assert check_quorum(h).ok


def test_failed_and_invented_values_are_caught_at_both_levels():
    for h in ([put("x", None, 0.0, 1.0, ok=False), get("x", 2.0, 2.1)], [get("ghost", 0.0, 0.1)]):
        assert not check_quorum(h).ok
        assert not check_one(h).ok


def test_deletes_are_writes_of_nothing():
    h = [put("a", 3, 0.0, 1.0), delete(4, 1.1, 1.2), get(None, 2.0, 2.1)]
    assert check_quorum(h).ok
    assert not check_quorum([put("a", 3, 0.0, 1.0), get(None, 2.0, 2.1)]).ok
    assert not check_quorum([delete(2, 0.0, 0.5), put("a", 3, 0.6, 1.0), get(None, 2.0, 2.1)]).ok

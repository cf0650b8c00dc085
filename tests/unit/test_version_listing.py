"""ListObjectVersions paging (metadata.fsm.version_listing) over plain in-memory data."""
from __future__ import annotations

import random

import pytest

from metadata.fsm.version_listing import list_versions_page

# key -> versions newest first; a version is (s3 id, stored id)
DATA = {
    "a": [("v3", "003"), ("v1", "001")],
    "b/1": [("null", "002")],
    "b/2": [("v5", "005"), ("null", "004")],
    "c": [("v6", "006")],
    "d/x/1": [("v7", "007")],
    "e": [("v9", "009"), ("v8", "008")],
}


def source(data=DATA):
    keys = sorted(data)

    def versions_from(start):
        for k in keys:
            if k >= start:
                yield k, data[k]

    return versions_from


def page(data=DATA, **kw):
    return list_versions_page(source(data), lambda v: v[0], lambda v: v[1], **kw)


def flat(p):
    return [(k, v[0], latest) for k, v, latest in p.entries]


def test_all_versions_in_order_with_latest_flags():
    p = page()
    assert flat(p) == [
        ("a", "v3", True), ("a", "v1", False), ("b/1", "null", True), ("b/2", "v5", True), ("b/2", "null", False),
        ("c", "v6", True), ("d/x/1", "v7", True), ("e", "v9", True), ("e", "v8", False),
    ]
    assert not p.is_truncated and p.next_key_marker is None and p.next_version_id_marker is None


def test_prefix_and_delimiter_roll_up_and_count_once():
    p = page(delimiter="/", max_keys=4)
    assert flat(p) == [("a", "v3", True), ("a", "v1", False), ("c", "v6", True)]
    assert p.common_prefixes == ["b/"]
    assert p.is_truncated and (p.next_key_marker, p.next_version_id_marker) == ("c", "v6")
    p = page(prefix="b/", delimiter="/")
    assert flat(p) == [("b/1", "null", True), ("b/2", "v5", True), ("b/2", "null", False)] and p.common_prefixes == []
    p = page(prefix="d/", delimiter="/")
    assert p.entries == [] and p.common_prefixes == ["d/x/"]


def test_page_ending_on_a_common_prefix_has_no_version_marker():
    p = page(delimiter="/", max_keys=3)
    assert p.common_prefixes == ["b/"] and p.is_truncated
    assert (p.next_key_marker, p.next_version_id_marker) == ("b/", None)
    nxt = page(delimiter="/", key_marker="b/")
    assert [k for k, _, _ in nxt.entries][0] == "c" and nxt.common_prefixes == ["d/"]


def test_page_boundary_inside_a_key_resumes_after_the_version():
    p = page(max_keys=1)
    assert flat(p) == [("a", "v3", True)] and (p.next_key_marker, p.next_version_id_marker) == ("a", "v3")
    p = page(key_marker="a", version_id_marker="v3", max_keys=2)
    assert flat(p) == [("a", "v1", False), ("b/1", "null", True)]
    assert (p.next_key_marker, p.next_version_id_marker) == ("b/1", "null")
    p = page(key_marker="b/2", version_id_marker="null")
    assert flat(p)[0] == ("c", "v6", True)


def test_key_marker_alone_is_exclusive():
    assert flat(page(key_marker="b/2"))[0] == ("c", "v6", True)
    assert flat(page(key_marker="b"))[0] == ("b/1", "null", True)
    assert page(key_marker="zzz").entries == []


def test_vanished_version_marker_resumes_by_stored_order():
    # "v4" is gone; stored ids are time-ordered, so resume below it.
    assert flat(page(key_marker="b/2", version_id_marker="0045"))[0] == ("b/2", "null", False)
    # A null marker that is gone skips the rest of its key.
    assert flat(page(key_marker="a", version_id_marker="null"))[0] == ("b/1", "null", True)


def test_truncation_is_exact():
    total = sum(len(v) for v in DATA.values())
    assert not page(max_keys=total).is_truncated
    assert page(max_keys=total - 1).is_truncated
    assert page(max_keys=0) == ([], [], False, None, None)


@pytest.mark.parametrize("seed", range(5))
def test_paging_visits_every_item_once(seed):
    rng = random.Random(seed)
    data = {}
    for i in range(60):
        key = rng.choice(["", "p/", "p/q/", "r/"]) + f"k{rng.randrange(100):02d}"
        n = rng.randrange(1, 4)
        null_at = rng.randrange(n + 1)  # at most one null version per key
        data[key] = [(f"{key}-v{j}" if j != null_at else "null", f"{100 - j:03d}") for j in range(n)]
    for delimiter in (None, "/"):
        whole = page(data, delimiter=delimiter, max_keys=10_000)
        got, prefixes = [], []
        km = vm = None
        for _ in range(1000):
            p = page(data, delimiter=delimiter, key_marker=km, version_id_marker=vm, max_keys=rng.randrange(1, 7))
            got += flat(p)
            prefixes += p.common_prefixes
            if not p.is_truncated:
                break
            km, vm = p.next_key_marker, p.next_version_id_marker
        assert got == flat(whole) and prefixes == whole.common_prefixes

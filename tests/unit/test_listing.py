"""S3 listing semantics of objstore.listing.list_page, against examples and a brute-force model."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from sortedcontainers import SortedDict

from objstore.listing import list_page, prefix_successor


def sd(*keys: str) -> SortedDict:
    return SortedDict({k: k.upper() for k in keys})


def keys_of(page) -> list[str]:
    return [k for k, _ in page.entries]


def test_flat_listing_returns_values_in_order():
    page = list_page(sd("b", "a", "c"), max_keys=10)
    assert page.entries == [("a", "A"), ("b", "B"), ("c", "C")]
    assert page.common_prefixes == []
    assert page.is_truncated is False
    assert page.next_marker is None


def test_prefix_filters_keys():
    page = list_page(sd("a/1", "a/2", "ab", "b/1"), prefix="a/")
    assert keys_of(page) == ["a/1", "a/2"]


def test_delimiter_rolls_up_common_prefixes():
    src = sd("asdf", "boo/bar", "boo/baz/xyzzy", "cquux/thud", "cquux/bla")
    page = list_page(src, delimiter="/")
    assert keys_of(page) == ["asdf"]
    assert page.common_prefixes == ["boo/", "cquux/"]


def test_delimiter_with_prefix_rolls_up_below_prefix():
    src = sd("boo/bar", "boo/baz/xyzzy", "boo/baz/a", "boo/qux")
    page = list_page(src, prefix="boo/", delimiter="/")
    assert keys_of(page) == ["boo/bar", "boo/qux"]
    assert page.common_prefixes == ["boo/baz/"]


def test_multichar_delimiter():
    page = list_page(sd("a--b--c", "a--d", "x"), delimiter="--")
    assert page.common_prefixes == ["a--"]
    assert keys_of(page) == ["x"]


def test_common_prefix_counts_once_toward_max_keys():
    src = sd(*[f"dir/{i:03d}" for i in range(50)], "z")
    page = list_page(src, delimiter="/", max_keys=1)
    assert page.common_prefixes == ["dir/"] and page.entries == []
    assert page.is_truncated is True and page.next_marker == "dir/"
    page2 = list_page(src, delimiter="/", start_after=page.next_marker, max_keys=1)
    assert keys_of(page2) == ["z"] and page2.common_prefixes == []
    assert page2.is_truncated is False and page2.next_marker is None


def test_start_after_is_exclusive():
    page = list_page(sd("a", "b", "c"), start_after="a")
    assert keys_of(page) == ["b", "c"]
    page = list_page(sd("a", "b", "c"), start_after="aa")
    assert keys_of(page) == ["b", "c"]


def test_start_after_inside_common_prefix_skips_that_prefix():
    src = sd("a/1", "a/2", "a/3", "b")
    page = list_page(src, delimiter="/", start_after="a/1")
    assert page.common_prefixes == []
    assert keys_of(page) == ["b"]
    page = list_page(src, delimiter="/", start_after="a/")
    assert page.common_prefixes == [] and keys_of(page) == ["b"]


def test_start_after_before_prefix_starts_at_prefix():
    page = list_page(sd("a", "m/1", "m/2", "z"), prefix="m/", start_after="b")
    assert keys_of(page) == ["m/1", "m/2"]


def test_start_after_past_prefix_is_empty():
    page = list_page(sd("m/1", "m/2", "z"), prefix="m/", start_after="n")
    assert page == ([], [], False, None)


def test_max_keys_zero_is_empty_and_not_truncated():
    page = list_page(sd("a", "b"), max_keys=0)
    assert page == ([], [], False, None)


def test_max_keys_exact_fit_is_not_truncated():
    page = list_page(sd("a", "b", "c"), max_keys=3)
    assert keys_of(page) == ["a", "b", "c"] and page.is_truncated is False and page.next_marker is None


def test_max_keys_one_short_is_truncated_with_marker():
    page = list_page(sd("a", "b", "c"), max_keys=2)
    assert keys_of(page) == ["a", "b"] and page.is_truncated is True and page.next_marker == "b"


def test_truncation_is_exact_when_rest_is_outside_prefix():
    page = list_page(sd("p/a", "p/b", "q"), prefix="p/", max_keys=2)
    assert page.is_truncated is False


def test_empty_delimiter_means_no_rollup():
    page = list_page(sd("a/1", "a/2"), delimiter="")
    assert keys_of(page) == ["a/1", "a/2"]


def test_odd_keys_sort_in_utf8_byte_order():
    keys = ["a b", "a%2F", "a/..", "a?#", "é", "\U0001f600", "z"]
    page = list_page(sd(*keys))
    got = keys_of(page)
    assert got == sorted(keys, key=lambda k: k.encode())


def test_prefix_successor():
    assert prefix_successor("a/") == "a0"
    assert prefix_successor("") is None
    assert prefix_successor("\U0010ffff") is None
    assert prefix_successor("a\U0010ffff") == "b"


def test_rollup_skip_seeks_instead_of_walking():
    src = sd(*[f"big/{i:05d}" for i in range(20000)], "c", "d")
    visited = []

    def keys_from(start):
        for k in src.irange(minimum=start):
            visited.append(k)
            yield k, src[k]

    page = list_page(keys_from, delimiter="/", max_keys=10)
    assert page.common_prefixes == ["big/"] and keys_of(page) == ["c", "d"]
    assert len(visited) < 10


def test_callable_source_equals_sorted_dict_source():
    src = sd("x/1", "x/2", "y", "z/z/z")
    a = list_page(src, delimiter="/", max_keys=2)
    b = list_page(lambda s: ((k, src[k]) for k in src.irange(minimum=s)), delimiter="/", max_keys=2)
    assert a == b


def test_pagination_returns_every_key_exactly_once():
    keys = [f"{d}/{i}" for d in "abc" for i in range(7)] + [str(i) for i in range(5)]
    src = sd(*keys)
    seen, marker = [], None
    for _ in range(100):
        page = list_page(src, start_after=marker, max_keys=4)
        seen.extend(keys_of(page))
        if not page.is_truncated:
            break
        marker = page.next_marker
    assert seen == sorted(keys)


# --- property: any page size gives the same sequence as one big page -------------------------


def model(keys, prefix, delimiter, start_after):
    """Brute force: every key or rolled-up prefix the listing must produce, in order."""
    out: list[tuple[str, str]] = []
    for k in sorted(set(keys)):
        if not k.startswith(prefix) or (start_after is not None and k <= start_after):
            continue
        i = k.find(delimiter, len(prefix)) if delimiter else -1
        if i < 0:
            out.append(("key", k))
            continue
        cp = k[: i + len(delimiter)]
        if start_after is not None and start_after.startswith(cp):
            continue
        if ("prefix", cp) not in out:
            out.append(("prefix", cp))
    return sorted(out, key=lambda item: item[1])


def paginate(src, prefix, delimiter, start_after, max_keys):
    items, marker = [], start_after
    for _ in range(10_000):
        page = list_page(src, prefix, delimiter, marker, max_keys)
        items.extend(("key", k) for k, _ in page.entries)
        items.extend(("prefix", p) for p in page.common_prefixes)
        assert len(page.entries) + len(page.common_prefixes) <= max_keys
        if not page.is_truncated:
            assert page.next_marker is None
            return sorted(items, key=lambda item: item[1])
        assert page.next_marker is not None
        marker = page.next_marker
    raise AssertionError("pagination did not terminate")


alphabet = st.sampled_from(["a", "b", "/", "-", "é"])
key_st = st.text(alphabet, min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(key_st, max_size=30),
    prefix=st.text(alphabet, max_size=2),
    delimiter=st.sampled_from([None, "/", "-", "a/"]),
    start_after=st.none() | st.text(alphabet, max_size=4),
    max_keys=st.integers(min_value=1, max_value=7),
)
def test_paginating_equals_one_big_page_equals_model(keys, prefix, delimiter, start_after, max_keys):
    src = sd(*keys)
    expected = model(keys, prefix, delimiter, start_after)
    big = list_page(src, prefix, delimiter, start_after, 10_000)
    assert not big.is_truncated
    one = sorted(
        [("key", k) for k, _ in big.entries] + [("prefix", p) for p in big.common_prefixes],
        key=lambda item: item[1],
    )
    assert one == expected
    assert paginate(src, prefix, delimiter, start_after, max_keys) == expected

"""S3 listing semantics over a sorted key space, as one pure function.

:func:`list_page` returns one page of ``ListObjects`` (v1 and v2 share it): the keys under
``prefix`` strictly after ``start_after``, with keys that contain ``delimiter`` after the
prefix rolled up into common prefixes.

Invariants (S3's behaviour):
- Keys compare in code-point order, which equals the UTF-8 byte order S3 uses.
- A common prefix counts once toward ``max_keys``, like a key, however many keys it covers.
- ``start_after`` (v1 ``Marker``, v2 ``StartAfter`` or decoded continuation token) is
  exclusive. When it falls inside a common prefix (it starts with ``prefix + X + delimiter``)
  the whole rolled-up prefix is skipped: it was returned on an earlier page.
- ``max_keys <= 0`` gives an empty page with ``is_truncated`` false.
- ``is_truncated`` is exact: true only when at least one more key or prefix follows.
- ``next_marker`` is the last key or common prefix returned when truncated, else ``None``;
  passing it back as ``start_after`` yields the next page.
- Skipping a rolled-up prefix costs one seek (to the prefix's successor), never a walk over
  the keys beneath it.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterable, Iterator, NamedTuple, TypeVar

from sortedcontainers import SortedDict

V = TypeVar("V")

KeysFrom = Callable[[str], Iterable[tuple[str, V]]]

_MAX_CHAR = 0x10FFFF


class Page(NamedTuple, Generic[V]):
    """One listing page; unpacks as ``(entries, common_prefixes, is_truncated, next_marker)``."""

    entries: list[tuple[str, V]]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str | None


def prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``.

    ``None`` when no such string exists (the prefix is empty or all maximal code points).
    """
    p = prefix
    while p and ord(p[-1]) == _MAX_CHAR:
        p = p[:-1]
    if not p:
        return None
    return p[:-1] + chr(ord(p[-1]) + 1)


def sorted_dict_source(d: SortedDict) -> KeysFrom:
    """Adapt a ``SortedDict`` (str keys) to a ``keys_from(start)`` source."""

    def keys_from(start: str) -> Iterator[tuple[str, object]]:
        for k in d.irange(minimum=start):
            yield k, d[k]

    return keys_from


def rollup(key: str, prefix: str, delimiter: str | None) -> str | None:
    """The common prefix ``key`` rolls up into, or None when it is listed as itself."""
    if not delimiter:
        return None
    i = key.find(delimiter, len(prefix))
    if i < 0:
        return None
    return key[: i + len(delimiter)]


def list_page(
    source: SortedDict | KeysFrom,
    prefix: str = "",
    delimiter: str | None = None,
    start_after: str | None = None,
    max_keys: int = 1000,
) -> Page:
    """One page of S3 listing over ``source``.

    ``source`` is a ``SortedDict`` or a callable ``keys_from(start)`` yielding ``(key,
    value)`` pairs with ``key >= start`` in ascending key order (it may be called again
    with a later start to skip ahead). See the module docstring for the exact semantics.
    """
    keys_from: KeysFrom = sorted_dict_source(source) if isinstance(source, SortedDict) else source
    if max_keys <= 0:
        return Page([], [], False, None)
    delimiter = delimiter or None

    start, skip_equal = prefix, None
    if start_after is not None and start_after >= prefix:
        start, skip_equal = start_after, start_after
        if start_after.startswith(prefix):
            cp = rollup(start_after, prefix, delimiter)
            if cp is not None:
                nxt = prefix_successor(cp)
                if nxt is None:
                    return Page([], [], False, None)
                start, skip_equal = nxt, None

    entries: list[tuple[str, V]] = []
    prefixes: list[str] = []
    last: str | None = None
    truncated = False
    it: Iterator[tuple[str, V]] | None = iter(keys_from(start))
    while it is not None:
        cursor, it = it, None
        for key, value in cursor:
            if key == skip_equal:
                continue
            if not key.startswith(prefix):
                break
            if len(entries) + len(prefixes) == max_keys:
                truncated = True
                break
            cp = rollup(key, prefix, delimiter)
            if cp is None:
                entries.append((key, value))
                last = key
                continue
            prefixes.append(cp)
            last = cp
            nxt = prefix_successor(cp)
            if nxt is not None:
                it = iter(keys_from(nxt))
            break
    return Page(entries, prefixes, truncated, last if truncated else None)

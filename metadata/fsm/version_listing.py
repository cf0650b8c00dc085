"""S3 ListObjectVersions semantics over a sorted key space, as one pure function.

:func:`list_versions_page` walks keys in ascending order and, for each key, its versions
newest first (delete markers included), rolling keys that contain ``delimiter`` after
``prefix`` up into common prefixes.

Invariants (S3's behaviour):
- Every version, delete marker and common prefix counts once toward ``max_keys``.
- ``key_marker`` alone is exclusive: listing starts with the keys after it (a marker inside
  a rolled-up prefix skips that whole prefix, as in ListObjects). With
  ``version_id_marker`` too, listing starts with the versions of ``key_marker`` that follow
  that version, then the keys after it. A version-id marker no longer present resumes at
  the first version whose stored id sorts below it (ids are time-ordered).
- ``is_truncated`` is exact: true only when at least one more item follows.
- When truncated, ``next_key_marker`` is the key (or common prefix) of the last item and
  ``next_version_id_marker`` its version id (None after a common prefix); passed back as
  ``key_marker``/``version_id_marker`` they yield the next page.
- ``max_keys <= 0`` gives an empty, untruncated page.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterable, Iterator, NamedTuple, Sequence, TypeVar

from objstore.listing import prefix_successor, rollup

R = TypeVar("R")

VersionsFrom = Callable[[str], Iterable[tuple[str, Sequence[R]]]]


class VersionPage(NamedTuple, Generic[R]):
    """``entries`` are (key, record, is_latest) in listing order."""

    entries: list[tuple[str, R, bool]]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_version_id_marker: str | None


class _Page:
    """Accumulates one page; ``add_*`` return False once the page is full (and mark it
    truncated, since the item offered is one more that follows)."""

    def __init__(self, max_keys: int, s3_id: Callable[[R], str]) -> None:
        self.max_keys = max_keys
        self.s3_id = s3_id
        self.entries: list = []
        self.prefixes: list[str] = []
        self.truncated = False
        self.last: tuple[str, str | None] | None = None

    def _room(self) -> bool:
        if len(self.entries) + len(self.prefixes) >= self.max_keys:
            self.truncated = True
            return False
        return True

    def add_versions(self, key: str, versions: Sequence[R], first: int) -> bool:
        for i in range(first, len(versions)):
            if not self._room():
                return False
            self.entries.append((key, versions[i], i == 0))
            self.last = (key, self.s3_id(versions[i]))
        return True

    def add_prefix(self, cp: str) -> bool:
        if not self._room():
            return False
        self.prefixes.append(cp)
        self.last = (cp, None)
        return True

    def result(self) -> VersionPage:
        nk = nv = None
        if self.truncated and self.last is not None:
            nk, nv = self.last
        return VersionPage(self.entries, self.prefixes, self.truncated, nk, nv)


def _resume_index(versions: Sequence[R], marker: str, s3_id: Callable[[R], str], order_id: Callable[[R], str]) -> int:
    """The index of the first version after ``marker`` in ``versions`` (newest first)."""
    for i, v in enumerate(versions):
        if s3_id(v) == marker:
            return i + 1
    if marker == "null":
        return len(versions)
    for i, v in enumerate(versions):
        if order_id(v) < marker:
            return i
    return len(versions)


def list_versions_page(
    versions_from: VersionsFrom,
    s3_id: Callable[[R], str],
    order_id: Callable[[R], str],
    prefix: str = "",
    delimiter: str | None = None,
    key_marker: str | None = None,
    version_id_marker: str | None = None,
    max_keys: int = 1000,
) -> VersionPage:
    """One page of ListObjectVersions over ``versions_from``.

    ``versions_from(start)`` yields ``(key, versions)`` for keys ``>= start`` in ascending
    order, each key's versions newest first (it may be called again with a later start to
    skip ahead). ``s3_id(record)`` is a record's version id as clients see it,
    ``order_id(record)`` its stored, time-ordered id. See the module docstring.
    """
    page = _Page(max_keys, s3_id)
    if max_keys <= 0:
        return page.result()
    delimiter = delimiter or None
    start, skip_equal = prefix, None
    if key_marker and key_marker >= prefix:
        start, skip_equal = key_marker, key_marker
        if key_marker.startswith(prefix):
            cp = rollup(key_marker, prefix, delimiter)
            if cp is not None:
                nxt = prefix_successor(cp)
                if nxt is None:
                    return page.result()
                start, skip_equal = nxt, None
            elif version_id_marker:
                for key, versions in versions_from(key_marker):
                    if key == key_marker:
                        first = _resume_index(versions, version_id_marker, s3_id, order_id)
                        if not page.add_versions(key, versions, first):
                            return page.result()
                    break

    it: Iterator | None = iter(versions_from(start))
    while it is not None:
        cursor, it = it, None
        for key, versions in cursor:
            if key == skip_equal:
                continue
            if not key.startswith(prefix):
                break
            cp = rollup(key, prefix, delimiter)
            if cp is None:
                if not page.add_versions(key, versions, 0):
                    return page.result()
                continue
            if not page.add_prefix(cp):
                return page.result()
            nxt = prefix_successor(cp)
            if nxt is not None:
                it = iter(versions_from(nxt))
            break
    return page.result()

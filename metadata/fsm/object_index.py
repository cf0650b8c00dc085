"""The object index of one bucket: every key's versions, and S3's versioning rules on them.

Layout (compact for the common case): two SortedDicts, key -> versions. ``live`` holds the
keys whose current version is an object (what ListObjects shows); ``hidden`` the keys whose
current version is a delete marker. A key with one version maps to its compact record
(``bytes``, :mod:`metadata.fsm.records`); a key with several maps to a tuple of records,
newest first. Values are immutable and replaced on change, so a shallow copy of the dicts
is a consistent snapshot.

Invariants:
- Every key in the index has at least one version; a key is in exactly one of ``live`` and
  ``hidden``, chosen by whether its newest version is a delete marker. ListObjects reads
  ``live`` only, so delete markers never slow it down.
- Versions are ordered by commit (the newest committed is current). At most one version
  per key is the null version (``versioned`` false): a write that creates a null version
  drops the previous one, which it returns so its blobs can be collected.
- Bucket versioning ``state`` is "" (never configured), "Enabled" or "Suspended":
  "" and "Suspended" write null versions, "Enabled" versioned ones. DELETE without a
  version id in "" drops the null version; otherwise it adds a delete marker (a null one
  in "Suspended", dropping the previous null version). DELETE with a version id removes
  exactly that version.
- Usage counters (``version_count``, ``marker_count``, ``byte_count``: versions that are
  objects, delete markers, and the bytes of all object versions) are kept by
  :meth:`BucketIndex.store`, the one place the index changes after it is filled, so they are
  exact, cost O(1) per change, and are counted again by a snapshot restore
  (:meth:`BucketIndex.load`, which fills the index in one go). ``len(live)`` is
  the number of objects (keys whose current version is an object).
- Conditional writes (If-Match / If-None-Match: *) are checked here, at apply time, against
  the current version, so they are atomic with the write.
- A snapshot's view (:meth:`BucketIndex.freeze`, :class:`FrozenIndex`) costs the event loop
  a copy of the keys only: the values are read later, in the encoding thread, from the
  maps themselves, and :meth:`BucketIndex.store` first saves the versions a key had when
  the view was taken into the view's ``before`` table, the first time the key changes after
  it. Reading the map before the table gives the frozen value whichever order the two
  threads' steps take (each dict operation is atomic under the GIL). A view's table lives
  as long as the view: the index holds it weakly and drops it once it is gone.
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import weakref
from typing import Any, Callable, Iterable, Iterator

from sortedcontainers import SortedDict

from metadata.fsm import page_rows, records
from metadata.api.results import DeleteResult, ObjectLookup, VersionListResult, WriteResult
from metadata.fsm.version_listing import list_versions_page
from objstore.errors import InvalidArgument, MethodNotAllowed, NoSuchKey, NoSuchVersion, PreconditionFailed
from objstore.listing import list_page
from objstore.s3rules import etag_matches
from objstore.types import ListResult, ObjectVersion

Versions = tuple[bytes, ...]


class BucketIndex:
    """The versions of every key of bucket ``name``; see the module docstring."""

    __slots__ = ("name", "atoms", "live", "hidden", "version_count", "marker_count", "byte_count", "watch",
                 "_views")

    def __init__(self, name: str, atoms: records.Atoms,
                 watch: Callable[[str, str, Versions, Versions], None] | None = None) -> None:
        self.name = name
        self.atoms = atoms
        self.live = SortedDict()
        self.hidden = SortedDict()
        self.version_count = 0
        self.marker_count = 0
        self.byte_count = 0
        # Told (bucket, key, old versions, new versions) of every change (placement_index).
        self.watch = watch
        self._views: list[weakref.ref[_Before]] = []  # the before tables of snapshot views alive

    # --- storage -----------------------------------------------------------------------

    def versions(self, key: str) -> Versions:
        """The records of ``key``, newest first (empty when the key has none)."""
        value = self.live.get(key)
        if value is None and self.hidden:
            value = self.hidden.get(key)
        if value is None:
            return ()
        return (value,) if isinstance(value, bytes) else value

    def store(self, key: str, versions: Versions) -> None:
        """Make ``versions`` (newest first) the versions of ``key``; empty removes the key."""
        old = self.versions(key)
        if self._views:
            self._save_before(key, old)
        if self.watch is not None:
            self.watch(self.name, key, old, versions)
        self._count(old, -1)
        self._count(versions, 1)
        if not versions:
            self.live.pop(key, None)
            self.hidden.pop(key, None)
            return
        value = versions[0] if len(versions) == 1 else versions
        if records.is_delete_marker(versions[0]):
            self.hidden[key] = value
            self.live.pop(key, None)
        else:
            self.live[key] = value
            if self.hidden:
                self.hidden.pop(key, None)

    def _save_before(self, key: str, old: Versions) -> None:
        alive = False
        for ref in self._views:
            before = ref()
            if before is None:
                continue
            alive = True
            if key not in before:
                before[key] = old
        if not alive:
            self._views = []
        elif len(self._views) > 1:
            self._views = [ref for ref in self._views if ref() is not None]

    def freeze(self) -> "FrozenIndex":
        """A view of the index as it is now, for a snapshot: the keys are copied here (on the
        loop), the values read by :meth:`FrozenIndex.pairs` (in any thread) as they were."""
        before = _Before()
        self._views = [ref for ref in self._views if ref() is not None]  # those of views gone
        self._views.append(weakref.ref(before))
        return FrozenIndex(self, tuple(self.live), tuple(self.hidden), before)

    def load(self, keys: list[str], values: list) -> None:
        """Fill this empty index at once (a snapshot's restore): ``values[i]`` holds the
        versions of ``keys[i]`` as :meth:`store` keeps them (one record, or a tuple of
        records newest first). Keys in ascending order build the sorted maps in one pass;
        other orders are sorted first. Raises ValueError when a key appears twice. The
        watcher is not told: the caller builds the derived state from the loaded keys."""
        if not self.is_empty():
            raise ValueError(f"bucket {self.name!r}: load into an index that holds keys")
        if any(a >= b for a, b in zip(keys, keys[1:])):
            order = sorted(range(len(keys)), key=keys.__getitem__)
            keys, values = [keys[i] for i in order], [values[i] for i in order]
            for a, b in zip(keys, keys[1:]):
                if a == b:
                    raise ValueError(f"key {a!r} of bucket {self.name!r} appears twice")
        live_k, live_v, hidden_k, hidden_v = [], [], [], []
        is_marker, size_of, count = records.is_delete_marker, records.size_of, self._count
        objects = markers = nbytes = 0  # of keys with one record (most), counted here
        for key, value in zip(keys, values):
            if isinstance(value, bytes):
                if is_marker(value):
                    markers += 1
                    hidden_k.append(key)
                    hidden_v.append(value)
                else:
                    objects += 1
                    nbytes += size_of(value)
                    live_k.append(key)
                    live_v.append(value)
                continue
            count(value, 1)
            if is_marker(value[0]):
                hidden_k.append(key)
                hidden_v.append(value)
            else:
                live_k.append(key)
                live_v.append(value)
        self.version_count += objects
        self.marker_count += markers
        self.byte_count += nbytes
        self.live = SortedDict(zip(live_k, live_v))
        self.hidden = SortedDict(zip(hidden_k, hidden_v))

    def _count(self, versions: Versions, sign: int) -> None:
        for rec in versions:
            if records.is_delete_marker(rec):
                self.marker_count += sign
            else:
                self.version_count += sign
                self.byte_count += sign * records.size_of(rec)

    def usage(self) -> dict[str, int]:
        """Objects (current versions that are objects), object versions, delete markers and
        the bytes of every object version: O(1), from the counters."""
        return {"objects": len(self.live), "versions": self.version_count, "delete_markers": self.marker_count,
                "bytes": self.byte_count}

    def is_empty(self) -> bool:
        return not self.live and not self.hidden

    def key_count(self) -> int:
        return len(self.live) + len(self.hidden)

    def versions_from(self, start: str) -> Iterator[tuple[str, Versions]]:
        """(key, versions) for every key ``>= start``, ascending, live and hidden merged."""
        live = ((k, self.live[k]) for k in self.live.irange(minimum=start))
        if self.hidden:
            hidden = ((k, self.hidden[k]) for k in self.hidden.irange(minimum=start))
            pairs: Iterator = heapq.merge(live, hidden, key=lambda kv: kv[0])
        else:
            pairs = live
        for k, value in pairs:
            yield k, ((value,) if isinstance(value, bytes) else value)

    def _decode(self, key: str, rec: bytes, parts: bool = True) -> ObjectVersion:
        return records.decode(self.name, key, rec, self.atoms, parts=parts)

    def _without_null(self, key: str, versions: Versions) -> tuple[Versions, ObjectVersion | None]:
        """``versions`` without the null version, and that version (or None)."""
        for i, rec in enumerate(versions):
            if not records.is_versioned(rec):
                return versions[:i] + versions[i + 1 :], self._decode(key, rec)
        return versions, None

    # --- reads -----------------------------------------------------------------------------

    def _marker_error(self, err_cls: type, key: str, rec: bytes, **extra: object) -> Exception:
        """A NoSuchKey/MethodNotAllowed for a delete marker; the lowercase extras tell the
        gateway to send ``x-amz-delete-marker`` and ``x-amz-version-id``."""
        m = self._decode(key, rec)
        return err_cls(Key=key, delete_marker=True, version_id=m.s3_version_id,
                       last_modified=m.last_modified, **extra)

    def _find(self, key: str, version_id: str | None) -> tuple[int, bytes]:
        """(position, record) of the version asked for: the current one when
        ``version_id`` is None. Raises NoSuchKey, NoSuchVersion, or, for a delete marker,
        NoSuchKey (current) / MethodNotAllowed (asked for by id)."""
        versions = self.versions(key)
        if version_id is None:
            if not versions:
                raise NoSuchKey(Key=key, BucketName=self.name)
            if records.is_delete_marker(versions[0]):
                raise self._marker_error(NoSuchKey, key, versions[0], BucketName=self.name)
            return 0, versions[0]
        for i, rec in enumerate(versions):
            if records.s3_version_id_of(rec) == version_id:
                if records.is_delete_marker(rec):
                    raise self._marker_error(
                        MethodNotAllowed, key, rec, ResourceType="DeleteMarker",
                        message="The specified method is not allowed against this resource.",
                    )
                return i, rec
        raise NoSuchVersion(Key=key, VersionId=version_id)

    def get(self, key: str, version_id: str | None = None) -> ObjectVersion:
        """The version asked for (see :meth:`_find` for the errors)."""
        return self._decode(key, self._find(key, version_id)[1])

    def list_current(
        self, prefix: str = "", delimiter: str | None = None, start_after: str | None = None, max_keys: int = 1000,
    ) -> ListResult:
        """One page of ListObjects: keys whose current version is an object."""
        page = list_page(self.live, prefix, delimiter, start_after, max_keys)
        contents = tuple(
            self._decode(k, value if isinstance(value, bytes) else value[0], parts=False) for k, value in page.entries
        )
        return ListResult(contents, tuple(page.common_prefixes), page.is_truncated, page.next_marker)

    def list_current_dict(
        self, prefix: str = "", delimiter: str | None = None, start_after: str | None = None, max_keys: int = 1000,
    ) -> dict[str, Any]:
        """:meth:`list_current`'s page in its wire form (``ListResult.to_dict``, each entry
        a :func:`records.listed_dict`), built straight from the records."""
        page = list_page(self.live, prefix, delimiter, start_after, max_keys)
        name, atoms, listed = self.name, self.atoms, records.listed_dict
        return {"contents": [listed(name, k, value if isinstance(value, bytes) else value[0], atoms)
                             for k, value in page.entries],
                "common_prefixes": list(page.common_prefixes), "is_truncated": page.is_truncated,
                "next_marker": page.next_marker}

    def list_current_rows(
        self, prefix: str = "", delimiter: str | None = None, start_after: str | None = None, max_keys: int = 1000,
        local: dict[str, Any] | None = None,
    ) -> str:
        """:meth:`list_current`'s page in the compact rows form, as JSON text
        (:mod:`metadata.fsm.page_rows`)."""
        page = list_page(self.live, prefix, delimiter, start_after, max_keys)
        entries = ((k, value if isinstance(value, bytes) else value[0]) for k, value in page.entries)
        return page_rows.rows_json(self.name, entries, self.atoms, page.common_prefixes, page.is_truncated,
                                   page.next_marker, local)

    def list_versions(
        self, prefix: str = "", delimiter: str | None = None, key_marker: str | None = None,
        version_id_marker: str | None = None, max_keys: int = 1000,
    ) -> VersionListResult:
        """One page of ListObjectVersions (:mod:`metadata.fsm.version_listing`)."""
        page = list_versions_page(
            self.versions_from, records.s3_version_id_of, records.version_id_of,
            prefix, delimiter, key_marker, version_id_marker, max_keys,
        )
        return VersionListResult(
            versions=tuple(self._decode(k, rec, parts=False) for k, rec, _ in page.entries),
            latest=tuple(latest for _, _, latest in page.entries),
            common_prefixes=tuple(page.common_prefixes),
            is_truncated=page.is_truncated,
            next_key_marker=page.next_key_marker,
            next_version_id_marker=page.next_version_id_marker,
        )

    # --- writes ----------------------------------------------------------------------------

    def put(self, v: ObjectVersion, state: str, if_match: str = "", if_none_match: bool = False) -> WriteResult:
        """Add ``v`` as the current version of its key under versioning ``state``.

        Raises PreconditionFailed (If-None-Match: * and the key has a current object;
        If-Match and the current ETag differs) or NoSuchKey (If-Match and no current
        object). Returns the version id written and the null version it replaced.
        """
        versions = self.versions(v.key)
        current = versions[0] if versions and not records.is_delete_marker(versions[0]) else None
        if if_none_match and current is not None:
            raise PreconditionFailed(Condition="If-None-Match")
        if if_match:
            if current is None:
                raise NoSuchKey(Key=v.key, BucketName=self.name)
            if not etag_matches(if_match, self._decode(v.key, current).etag):
                raise PreconditionFailed(Condition="If-Match")
        versioned = state == "Enabled"
        new = v if v.versioned is versioned and v.delete_marker is False else \
            dataclasses.replace(v, versioned=versioned, delete_marker=False)
        replaced = None
        if not new.versioned:
            versions, replaced = self._without_null(v.key, versions)
        self.store(v.key, (records.encode(new, self.atoms), *versions))
        return WriteResult(new.s3_version_id, state, replaced)

    def delete(self, key: str, state: str, version_id: str | None, marker: ObjectVersion | None) -> DeleteResult:
        """DeleteObject under versioning ``state``.

        With ``version_id``: remove that version (absent: nothing happens). Without: in an
        unversioned bucket drop the null version; else add ``marker`` (its id, time and
        owner; raises InvalidArgument when it is None) as a delete marker.
        """
        versions = self.versions(key)
        if version_id is not None:
            for i, rec in enumerate(versions):
                if records.s3_version_id_of(rec) == version_id:
                    removed = self._decode(key, rec)
                    self.store(key, versions[:i] + versions[i + 1 :])
                    return DeleteResult(version_id, removed.delete_marker, state, removed)
            return DeleteResult(version_id, False, state, None)
        if not state:
            rest, removed = self._without_null(key, versions)
            self.store(key, rest)
            return DeleteResult(None, False, state, removed)
        if marker is None:
            raise InvalidArgument("a delete marker needs a version id")
        removed = None
        if state == "Suspended":
            versions, removed = self._without_null(key, versions)
        m = dataclasses.replace(marker, key=key, versioned=state == "Enabled", delete_marker=True, size=0, etag="",
                                placement=(), parts=(), tags={})
        self.store(key, (records.encode(m, self.atoms), *versions))
        return DeleteResult(m.s3_version_id, True, state, removed)

    def set_tags(self, key: str, version_id: str | None, tags: dict[str, str], state: str) -> WriteResult:
        """Replace the tag set of a version (the current one when ``version_id`` is None);
        raises like :meth:`get`."""
        return self._rewrite(key, version_id, state, tags=dict(tags))

    def set_public_read(self, key: str, version_id: str | None, public_read: bool, state: str) -> WriteResult:
        """Set the public-read flag of a version (the current one when ``version_id`` is
        None); raises like :meth:`get`."""
        return self._rewrite(key, version_id, state, public_read=public_read)

    def _rewrite(self, key: str, version_id: str | None, state: str, **changes: Any) -> WriteResult:
        """Replace fields of one version's record in place."""
        i, rec = self._find(key, version_id)
        v = dataclasses.replace(self._decode(key, rec), **changes)
        versions = self.versions(key)
        self.store(key, versions[:i] + (records.encode(v, self.atoms),) + versions[i + 1 :])
        return WriteResult(v.s3_version_id, state)

    def lookup(self, key: str, version_id: str | None, state: str) -> ObjectLookup:
        return ObjectLookup(self.get(key, version_id), state)


class _Before(dict):
    """key -> the versions it had when a view was taken (``()``: it had none)."""

    __slots__ = ("__weakref__",)


_ABSENT = object()
_READ_BATCH = 1024  # keys whose values a view reads at a time


class FrozenIndex:
    """A bucket index as it was at :meth:`BucketIndex.freeze` (see the module docstring)."""

    __slots__ = ("name", "index", "keys", "hidden_keys", "before")

    def __init__(self, index: BucketIndex, keys: tuple[str, ...], hidden_keys: tuple[str, ...],
                 before: _Before) -> None:
        self.name = index.name
        self.index: BucketIndex | None = index
        self.keys = keys
        self.hidden_keys = hidden_keys
        self.before: _Before | None = before

    def pairs(self) -> Iterator[tuple[str, bytes | Versions]]:
        """(key, value as the index keeps it) for every key of the view, ascending, live and
        hidden merged; may be read in any thread while the index changes. Once only: the
        view hands its index and table to the iterator, which lets go of them when done."""
        index, before = self.index, self.before
        if index is None or before is None:
            raise RuntimeError(f"the view of bucket {self.name!r} was read already")
        self.index = self.before = None
        live = itertools.chain.from_iterable(_read(self.keys, index.live.get, before.get))
        if not self.hidden_keys:
            return live
        hidden = itertools.chain.from_iterable(_read(self.hidden_keys, index.hidden.get, before.get))
        return heapq.merge(live, hidden, key=lambda kv: kv[0])


def _read(keys: tuple[str, ...], get: Callable[[str], Any],
          saved: Callable[[str, Any], Any]) -> Iterator[Iterable[tuple[str, bytes | Versions]]]:
    """The (key, value) pairs of ``keys`` as they were when the view was taken, in batches."""
    for i in range(0, len(keys), _READ_BATCH):
        batch = keys[i:i + _READ_BATCH]
        # Each key's map value read before its table entry (the module docstring).
        found = list(map(get, batch))
        olds = list(map(saved, batch, itertools.repeat(_ABSENT, len(batch))))
        if olds.count(_ABSENT) == len(batch):  # none changed since (most batches)
            yield zip(batch, found)
        else:
            yield [(key, value if old is _ABSENT else old[0] if len(old) == 1 else old)
                   for key, value, old in zip(batch, found, olds)]

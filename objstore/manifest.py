"""Commit manifests: what a key's ring nodes know about its committed state, for reads
that do not go through the metadata service (``quorum`` and ``one`` consistency).

After a write or delete commits in the metadata service (Raft) and before the client is
answered, the gateway writes a :class:`CommitManifest` to the key's ring nodes. A manifest
says "after log index ``commit_index``, the key's current version is ``version``" (None:
the key has no object, a tombstone; a delete marker is a version with ``delete_marker``).

Invariants (pure rules, used by the storage nodes and the gateway alike):
- Manifests of one key are ordered by ``commit_index``, never by version id: a large PUT
  that started first may commit last, and the Raft order is the order readers must see.
- A manifest is only ever written for a committed write, so a blob whose version never
  committed has no manifest and is never served from one.
- ``replica:N`` manifests go to the key's N ring nodes; an ``ec:K+M`` object's manifests
  are replicated like a ``replica:M+1`` object (:func:`manifest_replicas`), with a
  majority of M+1 as both their read and write quorum.
- A tag or ACL change rewrites a version's record without a new version: its manifest
  holds the key's current version as of the change (read back from the metadata service),
  and, when the change was to a non-current version, that version as ``changed`` (so a
  read by version id sees it too).
- The encoding starts with a format number (``"f": 1``); ``changed`` is written only when
  set, so a manifest without it reads the same everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from objstore.errors import InvalidArgument
from objstore.types import ObjectVersion, Policy

FORMAT = 1
LEVELS = ("strong", "quorum", "one")  # read consistency levels (GetObject, HeadObject)
LIST_LEVELS = ("strong", "one")  # listing consistency levels


@dataclass(frozen=True, slots=True)
class CommitManifest:
    bucket: str
    key: str
    commit_index: int
    version: ObjectVersion | None  # the key's current version after the commit; None: none
    removed: str = ""  # the stored version id this commit removed for good ("" if none)
    write_quorum: int = 0  # the W the write was acknowledged with (0: not recorded)
    changed: ObjectVersion | None = None  # a non-current version this commit rewrote (tags, ACL)

    @property
    def tombstone(self) -> bool:
        """Whether the key has no current object after this commit (gone or a delete marker)."""
        return self.version is None or self.version.delete_marker

    def to_dict(self) -> dict[str, Any]:
        d = {"f": FORMAT, "bucket": self.bucket, "key": self.key, "commit_index": self.commit_index,
             "version": None if self.version is None else self.version.to_dict(),
             "removed": self.removed, "write_quorum": self.write_quorum}
        if self.changed is not None:  # only when set: readers that predate it see the same manifest
            d["changed"] = self.changed.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CommitManifest":
        """Raises InvalidArgument for an unknown format or a malformed manifest."""
        try:
            if d.get("f") != FORMAT:
                raise InvalidArgument(f"unknown manifest format {d.get('f')!r}")
            version = None if d.get("version") is None else ObjectVersion.from_dict(d["version"])
            index = int(d["commit_index"])
            if index <= 0 or not isinstance(d["bucket"], str) or not isinstance(d["key"], str):
                raise InvalidArgument("a manifest needs a bucket, a key and a positive commit index")
            changed = None if d.get("changed") is None else ObjectVersion.from_dict(d["changed"])
            return cls(d["bucket"], d["key"], index, version, str(d.get("removed", "")),
                       int(d.get("write_quorum", 0)), changed)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"malformed manifest: {exc}") from None


def newest(manifests: Iterable[CommitManifest]) -> CommitManifest | None:
    """The manifest with the highest commit index (None for none)."""
    return max(manifests, key=lambda m: m.commit_index, default=None)


def find_version(manifests: Iterable[CommitManifest], s3_version_id: str) -> ObjectVersion | None:
    """The version whose S3 id is ``s3_version_id`` ("null": the null version) as the
    newest manifest naming it recorded it; None when no manifest names it, or a later
    manifest removed it (or, for the null version, replaced it)."""
    found: tuple[int, ObjectVersion] | None = None
    gone = 0
    for m in manifests:
        for v in (m.version, m.changed):
            if v is not None and v.s3_version_id == s3_version_id and (found is None or m.commit_index > found[0]):
                found = (m.commit_index, v)
        if m.removed and (m.removed == s3_version_id or (found and m.removed == found[1].version_id)):
            gone = max(gone, m.commit_index)
    if found is None or gone > found[0]:
        return None
    return found[1]


def manifest_replicas(policy: Policy) -> int:
    """N for a key's manifests: N for ``replica:N``, M+1 for ``ec:K+M`` (its loss tolerance)."""
    return policy.n if policy.kind == "replica" else policy.m + 1


def manifest_write_quorum(policy: Policy, data_quorum: int) -> int:
    """How many manifest replicas a write waits for: the data's W for ``replica:N``, a
    majority of M+1 for ``ec:K+M``."""
    n = manifest_replicas(policy)
    if policy.kind == "replica":
        return max(1, min(data_quorum or policy.default_write_quorum(), n))
    return n // 2 + 1


def manifest_read_quorum(policy: Policy, bucket_quorum: int = 0) -> int:
    """R for a ``quorum`` read: N - W + 1 with the bucket's W (so R + W > N), a majority of
    M+1 for ``ec:K+M``."""
    n = manifest_replicas(policy)
    return max(1, n - manifest_write_quorum(policy, bucket_quorum) + 1)


def quorums_overlap(policy: Policy, bucket_quorum: int, write_quorum: int) -> bool:
    """Whether a write acknowledged by ``write_quorum`` is seen by every quorum read of a
    bucket whose W is ``bucket_quorum``: R + W > N for its manifests. A per-request W below
    the bucket's breaks it (the write's answer says so)."""
    n = manifest_replicas(policy)
    return manifest_read_quorum(policy, bucket_quorum) + manifest_write_quorum(policy, write_quorum) > n


def check_level(value: str, allowed: tuple[str, ...] = LEVELS) -> str:
    """``value`` if it is one of ``allowed``; InvalidArgument otherwise."""
    if value not in allowed:
        raise InvalidArgument(f"Invalid consistency {value!r}: it must be one of {', '.join(allowed)}.",
                              ArgumentName="x-objstore-consistency", ArgumentValue=value[:64])
    return value

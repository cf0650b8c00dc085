"""Results of the versioning-aware object commands and reads of the metadata service.

Frozen records with ``to_dict``/``from_dict``: they are remembered as command outcomes
(in sessions and snapshots) and cross the metadata HTTP API as JSON.

Version ids here are the ones S3 clients see (``ObjectVersion.s3_version_id``: the stored
id, or "null" for a key's null version). ``versioning`` is the bucket's state when the
command applied or the read ran: "" (never configured), "Enabled" or "Suspended"; S3
reports ``x-amz-version-id`` only when it is not "".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from objstore.types import ObjectVersion


def _version(d: Any) -> ObjectVersion | None:
    return None if d is None else ObjectVersion.from_dict(d)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a PutObject (or a tagging change) did.

    ``replaced``: the version the write dropped (the previous null version), whose blobs
    are now garbage; None when nothing was dropped.
    """

    version_id: str
    versioning: str = ""
    replaced: ObjectVersion | None = None
    commit_index: int = field(default=0, compare=False)  # the Raft log index the write applied at (0: not known)
    map_epoch: int = field(default=0, compare=False)  # the cluster-map epoch it applied at (0: not known)

    def version_header(self) -> dict[str, str]:
        """``{"x-amz-version-id": ...}`` when the bucket has versioning configured."""
        return {"x-amz-version-id": self.version_id} if self.versioning else {}

    def to_dict(self) -> dict[str, Any]:
        return {"version_id": self.version_id, "versioning": self.versioning,
                "replaced": None if self.replaced is None else self.replaced.to_dict(),
                "commit_index": self.commit_index, "map_epoch": self.map_epoch}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WriteResult":
        return cls(d["version_id"], d.get("versioning", ""), _version(d.get("replaced")), d.get("commit_index", 0),
                   d.get("map_epoch", 0))


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """What a DeleteObject did.

    ``version_id``: the delete marker created, or the version removed by id (None when the
    bucket is unversioned and no version id was asked for); ``delete_marker``: a marker was
    created or removed; ``removed``: the version dropped for good (its blobs are garbage,
    unless it is a delete marker), None when nothing was.
    """

    version_id: str | None = None
    delete_marker: bool = False
    versioning: str = ""
    removed: ObjectVersion | None = None
    commit_index: int = field(default=0, compare=False)  # the Raft log index the delete applied at (0: not known)
    map_epoch: int = field(default=0, compare=False)  # the cluster-map epoch it applied at (0: not known)

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.delete_marker:
            h["x-amz-delete-marker"] = "true"
        if self.version_id is not None:
            h["x-amz-version-id"] = self.version_id
        return h

    def to_dict(self) -> dict[str, Any]:
        return {"version_id": self.version_id, "delete_marker": self.delete_marker, "versioning": self.versioning,
                "removed": None if self.removed is None else self.removed.to_dict(),
                "commit_index": self.commit_index, "map_epoch": self.map_epoch}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DeleteResult":
        return cls(d.get("version_id"), bool(d.get("delete_marker")), d.get("versioning", ""),
                   _version(d.get("removed")), d.get("commit_index", 0), d.get("map_epoch", 0))


@dataclass(frozen=True, slots=True)
class ObjectLookup:
    """A version found by a read, and the bucket's versioning state at that moment."""

    version: ObjectVersion
    versioning: str = ""

    def version_header(self) -> dict[str, str]:
        return {"x-amz-version-id": self.version.s3_version_id} if self.versioning else {}

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version.to_dict(), "versioning": self.versioning}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ObjectLookup":
        return cls(ObjectVersion.from_dict(d["version"]), d.get("versioning", ""))


@dataclass(frozen=True, slots=True)
class VersionListResult:
    """One page of ListObjectVersions.

    ``versions`` holds object versions and delete markers in S3's order (keys ascending,
    each key's versions newest first); ``latest[i]`` tells whether ``versions[i]`` is its
    key's current version. When truncated, ``next_key_marker`` (and, unless the page ended
    on a common prefix, ``next_version_id_marker``) continue the listing.
    """

    versions: tuple[ObjectVersion, ...]
    latest: tuple[bool, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_key_marker: str | None = None
    next_version_id_marker: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "versions": [v.to_dict() for v in self.versions], "latest": list(self.latest),
            "common_prefixes": list(self.common_prefixes), "is_truncated": self.is_truncated,
            "next_key_marker": self.next_key_marker, "next_version_id_marker": self.next_version_id_marker,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VersionListResult":
        return cls(
            versions=tuple(ObjectVersion.from_dict(v) for v in d["versions"]),
            latest=tuple(bool(x) for x in d["latest"]),
            common_prefixes=tuple(d["common_prefixes"]),
            is_truncated=bool(d["is_truncated"]),
            next_key_marker=d.get("next_key_marker"),
            next_version_id_marker=d.get("next_version_id_marker"),
        )


@dataclass(frozen=True, slots=True)
class LocalRead:
    """Which metadata member answered a local (``one``) read, and how current its state was:
    the log index it had applied and the commit index it knew of."""

    node_id: str
    role: str
    applied_index: int
    commit_index: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LocalRead":
        return cls(str(d.get("node_id", "")), str(d.get("role", "")), int(d.get("applied_index", 0)),
                   int(d.get("commit_index", 0)))

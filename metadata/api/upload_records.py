"""Records of multipart uploads, shared by the metadata state machine, its API and gateways.

Frozen dataclasses with ``to_dict``/``from_dict`` (the JSON of the internal API, of
command outcomes and of snapshots). An upload is identified by (bucket, key, upload id);
its parts are :class:`~objstore.types.PartRef` plus the time each was uploaded.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from objstore.s3rules import CHECKSUM_TYPES  # noqa: F401  (one home; importable here too)
from objstore.types import ObjectVersion, PartRef

MIN_PART_SIZE = 5 * 1024**2  # every part but the last of a completed upload
MAX_PART_SIZE = 5 * 1024**3
MAX_PART_NUMBER = 10_000


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    """An upload in progress: what the completed object will be, and who started it when."""

    bucket: str
    key: str
    upload_id: str
    initiated: float
    owner: str
    content_type: str = "binary/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)  # content-encoding, cache-control, ...
    user_meta: dict[str, str] = field(default_factory=dict)
    policy: str = "replica:3"
    checksum_algorithm: str = ""  # "" or lower-case: crc32, crc32c, crc64nvme, sha1, sha256
    checksum_type: str = ""  # "" | COMPOSITE | FULL_OBJECT
    tags: dict[str, str] = field(default_factory=dict)  # x-amz-tagging, for the completed object

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MultipartUpload":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclass(frozen=True, slots=True)
class UploadedPart:
    """A part of an upload in progress and when it was uploaded."""

    part: PartRef
    last_modified: float

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part.to_dict(), "last_modified": self.last_modified}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UploadedPart":
        return cls(PartRef.from_dict(d["part"]), d["last_modified"])


@dataclass(frozen=True, slots=True)
class PartList:
    """Parts whose blobs nobody references any more (to garbage-collect)."""

    parts: tuple[PartRef, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"parts": [p.to_dict() for p in self.parts]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PartList":
        return cls(tuple(PartRef.from_dict(p) for p in d["parts"]))


@dataclass(frozen=True, slots=True)
class CompletedUpload:
    """The outcome of CompleteMultipartUpload.

    ``version`` is the new current version (without its parts list, which only the index
    keeps); ``previous`` the version it replaced (its blobs
    are garbage once no record references them); ``unused`` the uploaded parts left out of
    the object (garbage). ``replayed`` is True when the upload had already been completed
    with this id and its object is still current: nothing changed, nothing to collect.
    """

    version: ObjectVersion
    previous: ObjectVersion | None = None
    unused: tuple[PartRef, ...] = ()
    replayed: bool = False
    versioning: str = ""  # the bucket's versioning state: "" | Enabled | Suspended
    s3_version_id: str = ""  # the id S3 clients see ("null" unless the bucket is versioned)
    commit_index: int = field(default=0, compare=False)  # the Raft log index the completion applied at (0: not known)
    map_epoch: int = field(default=0, compare=False)  # the cluster-map epoch it applied at (0: not known)

    def version_header(self) -> dict[str, str]:
        """``{"x-amz-version-id": ...}`` when the bucket has versioning configured."""
        return {"x-amz-version-id": self.s3_version_id} if self.versioning and self.s3_version_id else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version.to_dict(),
            "previous": None if self.previous is None else self.previous.to_dict(),
            "unused": [p.to_dict() for p in self.unused],
            "replayed": self.replayed,
            "versioning": self.versioning,
            "s3_version_id": self.s3_version_id,
            "commit_index": self.commit_index,
            "map_epoch": self.map_epoch,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CompletedUpload":
        return cls(
            ObjectVersion.from_dict(d["version"]),
            None if d.get("previous") is None else ObjectVersion.from_dict(d["previous"]),
            tuple(PartRef.from_dict(p) for p in d.get("unused", ())),
            bool(d.get("replayed", False)),
            d.get("versioning", ""),
            d.get("s3_version_id", ""),
            d.get("commit_index", 0),
            d.get("map_epoch", 0),
        )


@dataclass(frozen=True, slots=True)
class PartsPage:
    """One page of ListParts."""

    upload: MultipartUpload
    parts: tuple[UploadedPart, ...]
    is_truncated: bool
    next_marker: int  # the last part number returned (0 when none)

    def to_dict(self) -> dict[str, Any]:
        return {"upload": self.upload.to_dict(), "parts": [p.to_dict() for p in self.parts],
                "is_truncated": self.is_truncated, "next_marker": self.next_marker}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PartsPage":
        return cls(MultipartUpload.from_dict(d["upload"]), tuple(UploadedPart.from_dict(p) for p in d["parts"]),
                   d["is_truncated"], d["next_marker"])


@dataclass(frozen=True, slots=True)
class UploadsPage:
    """One page of ListMultipartUploads: uploads in (key, upload id) order, common prefixes."""

    uploads: tuple[MultipartUpload, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"uploads": [u.to_dict() for u in self.uploads], "common_prefixes": list(self.common_prefixes),
                "is_truncated": self.is_truncated, "next_key_marker": self.next_key_marker,
                "next_upload_id_marker": self.next_upload_id_marker}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UploadsPage":
        return cls(tuple(MultipartUpload.from_dict(u) for u in d["uploads"]), tuple(d["common_prefixes"]),
                   d["is_truncated"], d["next_key_marker"], d["next_upload_id_marker"])

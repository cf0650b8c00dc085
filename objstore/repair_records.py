"""Records of repair, shared by the metadata leader and the storage nodes: the outcome of a
conditional placement update, a repair task, a damage report. Frozen, with ``to_dict`` and
``from_dict`` for the JSON of the internal APIs (outcomes are also remembered in sessions
and snapshots).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REPORT_REASONS = ("missing", "corrupt")


@dataclass(frozen=True, slots=True)
class RepairOutcome:
    """What a RepairPlacement did: ``applied``, or not and why (``reason``: "deleted" when
    the version is gone, "stale" when its placement is no longer the one expected)."""

    applied: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"applied": self.applied, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RepairOutcome":
        return cls(bool(d["applied"]), str(d.get("reason", "")))


@dataclass(frozen=True, slots=True)
class DamageReport:
    """A replica or shard a reader or a scrub found missing or corrupt on a node."""

    bucket: str
    key: str
    version_id: str
    node_id: str
    part: int = 0
    shard: int = -1  # replica index or EC shard index; -1 unknown
    reason: str = "missing"

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "version_id": self.version_id, "part": self.part,
                "shard": self.shard, "node_id": self.node_id, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: Any) -> "DamageReport":
        """Raises ValueError unless ``d`` is a well-typed report."""
        if not isinstance(d, dict):
            raise ValueError("a report must be a JSON object")
        r = cls(d.get("bucket"), d.get("key"), d.get("version_id"), d.get("node_id"),  # type: ignore[arg-type]
                d.get("part", 0), d.get("shard", -1), d.get("reason", "missing"))
        for name in ("bucket", "key", "version_id", "node_id", "reason"):
            if not isinstance(getattr(r, name), str):
                raise ValueError(f"report field {name} must be a string")
        for name in ("part", "shard"):
            v = getattr(r, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"report field {name} must be an integer")
        if r.reason not in REPORT_REASONS:
            raise ValueError(f"report reason must be one of {', '.join(REPORT_REASONS)}")
        return r


@dataclass(frozen=True, slots=True)
class Source:
    """A copy to read from: shard ``shard`` of the blob on node ``node_id`` at ``address``."""

    node_id: str
    address: str
    shard: int

    def to_dict(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "address": self.address, "shard": self.shard}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Source":
        return cls(d["node_id"], d["address"], int(d["shard"]))


@dataclass(frozen=True, slots=True)
class RepairTask:
    """Re-create one copy of one blob on node ``target``.

    The blob ``blob_id`` is version ``version_id``'s own (``part`` 0) or its part ``part``'s
    (the part's version id), of (bucket, key), stored as ``policy`` (the record's layout
    string), ``size`` bytes of object data. The target
    writes shard ``shard`` (0 for a replica; the lost shard's index for ec) from
    ``sources``, then the leader commits ``placement`` in place of ``expected``. A
    rebalancing ``move`` is the same work for a blob at full policy whose placement is not
    the ring's: ``placement`` swaps one misplaced node for ``target`` (the old copy is left
    to garbage collection), and the target throttles it with its rebalance rate. With
    ``upload_id`` the blob is part ``part`` of that multipart upload in progress and
    ``version_id`` is the part's own id (moves off a draining node only).
    """

    task_id: str
    bucket: str
    key: str
    version_id: str
    part: int
    policy: str
    size: int
    shard: int
    target: str
    expected: tuple[str, ...]
    placement: tuple[str, ...]
    sources: tuple[Source, ...] = field(default_factory=tuple)
    blob_id: str = ""  # "" means version_id
    spare: int = 0  # surviving copies beyond those needed to read, when planned
    move: bool = False  # a rebalancing move, not a repair
    upload_id: str = ""  # set: part ``part`` (blob ``version_id``) of this multipart upload in progress

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "bucket": self.bucket, "key": self.key, "version_id": self.version_id,
                "part": self.part, "policy": self.policy, "size": self.size, "shard": self.shard,
                "target": self.target, "expected": list(self.expected), "placement": list(self.placement),
                "sources": [s.to_dict() for s in self.sources], "blob_id": self.blob_id,
                "spare": self.spare, "move": self.move, "upload_id": self.upload_id}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RepairTask":
        return cls(d["task_id"], d["bucket"], d["key"], d["version_id"], int(d["part"]), d["policy"],
                   int(d["size"]), int(d["shard"]), d["target"], tuple(d["expected"]), tuple(d["placement"]),
                   tuple(Source.from_dict(s) for s in d.get("sources", ())), d.get("blob_id", ""),
                   int(d.get("spare", 0)), bool(d.get("move", False)), str(d.get("upload_id", "")))

    @property
    def blob(self) -> str:
        """The version id the blob is stored under on the nodes."""
        return self.blob_id or self.version_id

    @property
    def blob_key(self) -> tuple[str, str, str, int]:
        """(bucket, key, version id, part): one blob; at most one task per blob at a time."""
        return self.bucket, self.key, self.version_id, self.part

"""Typed records shared by every part: nodes, the cluster map, policies, buckets, versions.

All records are frozen dataclasses with ``to_dict``/``from_dict`` for the JSON that
crosses the internal APIs and lands in the metadata log. Encodings that are stored
carry a format version (``FORMAT_VERSION``) at their top level.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from objstore.errors import InvalidArgument

FORMAT_VERSION = 1

# The states of a storage node in the cluster map (each change is a Raft command and a new
# epoch):
#   up        heartbeating, takes new placements
#   full      heartbeating, free space below the reserve: reads and deletes only
#   down      missed heartbeats for the node timeout: its copies are not read first, no new
#             placements; it keeps its place in the ring (a short outage moves nothing)
#   out       down for longer than the down-after interval: its copies count as lost and are
#             re-created elsewhere; it leaves the ring
#   joining   registered, not yet added to the ring by an operator
#   draining  its data is being moved off; it keeps serving reads
#   removed   gone for good
NODE_STATES = ("up", "full", "down", "out", "joining", "draining", "removed")
# States whose nodes keep their share of the ring (placement does not move for them).
RING_STATES: tuple[str, ...] = ("up", "full", "down")
# States whose nodes take new blobs.
WRITABLE_STATES: tuple[str, ...] = ("up",)
# States whose copies still count towards an object's redundancy.
HOLDING_STATES: tuple[str, ...] = ("up", "full", "down", "draining")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A storage node as the cluster map knows it."""

    node_id: str
    address: str  # "host:port" of its internal HTTP API
    zone: str = "zone-a"
    weight: float = 1.0
    state: str = "up"
    capacity_bytes: int = 0
    used_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NodeInfo":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


Placement = tuple[tuple[str, str, float], ...]  # (node id, zone, weight) of each ring node, by id


def placement_of(nodes: "Iterable[NodeInfo]") -> Placement:
    """What a ring's placement depends on: the id, zone and weight of each node in
    ``RING_STATES`` with a positive weight, sorted by id (:class:`objstore.ring.Ring`
    takes exactly these nodes)."""
    return tuple(sorted((n.node_id, n.zone, float(n.weight)) for n in nodes if n.state in RING_STATES and n.weight > 0))


@dataclass(frozen=True, slots=True)
class KeptRing:
    """A ring replaced while manifests may sit on its owners, not yet handed over to a
    newer ring (:mod:`gateway.ring_epochs`): the map epoch it came into effect at and its
    placement."""

    epoch: int
    placement: Placement

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "nodes": [list(n) for n in self.placement]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "KeptRing":
        return cls(int(d["epoch"]), tuple((str(i), str(z), float(w)) for i, z, w in d["nodes"]))


def address_digest(node_id: str, address: str) -> str:
    """A short digest of a storage node's address: lets a launcher see that a gateway's map
    has a node at the address it was started at (after a restart the map first holds the
    previous one) without the gateway publishing addresses."""
    return hashlib.sha256(f"{node_id}@{address}".encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class ClusterMap:
    """The storage nodes and an epoch that increases on every change. ``ring_epoch``: the
    epoch the current ring (its placement) came into effect at; ``kept_rings``: the rings it
    replaced that are not yet handed over, newest first."""

    epoch: int
    nodes: tuple[NodeInfo, ...]
    ring_epoch: int = 0
    kept_rings: tuple[KeptRing, ...] = ()

    def address_digests(self) -> dict[str, str]:
        """Node id -> :func:`address_digest` of its address in this map."""
        return {n.node_id: address_digest(n.node_id, n.address) for n in self.nodes}

    def node(self, node_id: str) -> NodeInfo | None:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "nodes": [n.to_dict() for n in self.nodes], "ring_epoch": self.ring_epoch,
                "kept_rings": [r.to_dict() for r in self.kept_rings]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClusterMap":
        return cls(epoch=d["epoch"], nodes=tuple(NodeInfo.from_dict(n) for n in d["nodes"]),
                   ring_epoch=int(d.get("ring_epoch", 0)),
                   kept_rings=tuple(KeptRing.from_dict(r) for r in d.get("kept_rings", ())))


_POLICY_RE = re.compile(r"^(?:replica:([0-9]+)|ec:([0-9]+)\+([0-9]+))$")


@dataclass(frozen=True, slots=True)
class Policy:
    """A data policy: ``replica:N`` (N full copies) or ``ec:K+M`` (erasure coded)."""

    kind: str  # "replica" | "ec"
    n: int  # copies for replica; K+M for ec
    k: int = 0
    m: int = 0

    @classmethod
    def parse(cls, text: str) -> "Policy":
        """Parse ``replica:N`` or ``ec:K+M``; raises InvalidArgument on anything else."""
        m = _POLICY_RE.match(text.strip())
        if not m:
            raise InvalidArgument(f"Invalid data policy {text!r}: expected replica:N or ec:K+M")
        if m.group(1) is not None:
            n = int(m.group(1))
            if not 1 <= n <= 16:
                raise InvalidArgument(f"Invalid data policy {text!r}: replica count must be 1..16")
            return cls("replica", n)
        k, mm = int(m.group(2)), int(m.group(3))
        if not (1 <= k <= 32 and 0 <= mm <= 16):
            raise InvalidArgument(f"Invalid data policy {text!r}")
        return cls("ec", k + mm, k, mm)

    def default_write_quorum(self) -> int:
        """W: a majority of N for replicas, K+1 (capped at K+M) for erasure coding."""
        if self.kind == "replica":
            return self.n // 2 + 1
        return min(self.k + 1, self.n)

    def check_write_quorum(self, w: int) -> int:
        """``w`` if it is a write quorum this policy allows: 1 <= W <= N for ``replica:N``;
        K+1 <= W <= K+M for ``ec:K+M`` (W = K would acknowledge an object that a single lost
        node makes unreadable). Raises InvalidArgument naming the rule otherwise."""
        if self.kind == "replica":
            if not 1 <= w <= self.n:
                raise InvalidArgument(f"Invalid write quorum {w} for {self}: it must be 1 to {self.n}.")
            return w
        low = self.default_write_quorum()
        if not low <= w <= self.n:
            raise InvalidArgument(
                f"Invalid write quorum {w} for {self}: it must be K+1 = {low} to K+M = {self.n}"
                + (" (W = K would acknowledge an object with no redundancy)." if w == self.k else "."))
        return w

    def __str__(self) -> str:
        return f"replica:{self.n}" if self.kind == "replica" else f"ec:{self.k}+{self.m}"


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    owner: str
    created: float  # unix seconds
    policy: str = "replica:3"
    consistency: str = "strong"
    versioning: str = ""  # "" | "Enabled" | "Suspended"
    tags: dict[str, str] = field(default_factory=dict)  # bucket tagging
    access_policy: str = ""  # the bucket policy JSON as put ("" none; objstore.bucket_policy)
    public_read: bool = False  # canned ACL public-read: anyone may list the bucket
    write_quorum: int = 0  # W: nodes that must store a new blob (0: the policy's default)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Bucket":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclass(frozen=True, slots=True)
class PartRef:
    """One part of a multipart object: its own blob (``version_id``) on its own nodes."""

    number: int  # 1..10000
    version_id: str
    size: int
    etag: str  # hex MD5 of the part
    placement: tuple[str, ...] = ()
    checksums: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "version_id": self.version_id, "size": self.size, "etag": self.etag,
                "placement": list(self.placement), "checksums": dict(self.checksums)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PartRef":
        return cls(d["number"], d["version_id"], d["size"], d["etag"], tuple(d.get("placement", ())),
                   dict(d.get("checksums", {})))


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """The version record of one object: what the metadata index stores per key.

    ``placement`` lists the node ids holding the blob (replica i, or shard i for EC),
    ``ring_epoch`` the cluster-map epoch it was placed under.
    """

    bucket: str
    key: str
    version_id: str
    size: int
    etag: str  # hex MD5 (without quotes), or "<md5>-N" for multipart
    last_modified: float
    content_type: str = "binary/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)  # content-encoding, cache-control, ...
    user_meta: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* without the prefix
    policy: str = "replica:3"
    placement: tuple[str, ...] = ()
    ring_epoch: int = 0
    checksums: dict[str, str] = field(default_factory=dict)  # e.g. {"crc32": "base64..."}
    delete_marker: bool = False
    owner: str = ""
    # A multipart object: its parts in order, each its own blob; ``placement`` is then empty.
    parts: tuple[PartRef, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)  # object tagging
    # Written while the bucket's versioning was Enabled: S3 shows ``version_id``. Otherwise
    # this is the key's "null" version (set by the metadata service, not by writers).
    versioned: bool = False
    public_read: bool = False  # canned ACL public-read: anyone may read this version

    @property
    def s3_version_id(self) -> str:
        """The version id S3 clients see: ``version_id``, or "null" for the null version."""
        return self.version_id if self.versioned else "null"

    def to_dict(self) -> dict[str, Any]:
        # Written out field by field: dataclasses.asdict deep-copies, which dominated the
        # cost of a 1000-key listing page.
        return {
            "bucket": self.bucket, "key": self.key, "version_id": self.version_id, "size": self.size,
            "etag": self.etag, "last_modified": self.last_modified, "content_type": self.content_type,
            "headers": dict(self.headers), "user_meta": dict(self.user_meta), "policy": self.policy,
            "placement": list(self.placement), "ring_epoch": self.ring_epoch, "checksums": dict(self.checksums),
            "delete_marker": self.delete_marker, "owner": self.owner,
            "parts": [p.to_dict() for p in self.parts], "tags": dict(self.tags), "versioned": self.versioned,
            "public_read": self.public_read,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ObjectVersion":
        # Over the fields present: a listed entry leaves out the fields at their default.
        kw = {name: value for name, value in d.items() if name in _VERSION_FIELDS}
        if "placement" in kw:
            kw["placement"] = tuple(kw["placement"])
        if "parts" in kw:
            kw["parts"] = tuple(PartRef.from_dict(p) for p in kw["parts"])
        return cls(**kw)

    def blob_refs(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(version id, node ids) of every blob holding this version's bytes: its own blob,
        or one per part for a multipart object. Garbage collection deletes exactly these."""
        if self.parts:
            return tuple((p.version_id, p.placement) for p in self.parts)
        return ((self.version_id, self.placement),)


_VERSION_FIELDS = frozenset(f.name for f in dataclasses.fields(ObjectVersion))


@dataclass(frozen=True, slots=True)
class Credential:
    access_key: str
    secret_key: str
    owner: str
    display_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Credential":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclass(frozen=True, slots=True)
class ListResult:
    """One page of a listing: keys (as version records), common prefixes, continuation."""

    contents: tuple[ObjectVersion, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_marker: str | None  # the last key or prefix returned, when truncated

    def to_dict(self) -> dict[str, Any]:
        return {
            "contents": [c.to_dict() for c in self.contents],
            "common_prefixes": list(self.common_prefixes),
            "is_truncated": self.is_truncated,
            "next_marker": self.next_marker,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ListResult":
        return cls(
            contents=tuple(ObjectVersion.from_dict(c) for c in d["contents"]),
            common_prefixes=tuple(d["common_prefixes"]),
            is_truncated=d["is_truncated"],
            next_marker=d["next_marker"],
        )

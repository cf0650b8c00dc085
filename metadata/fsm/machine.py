"""The metadata state machine: cluster map, buckets, credentials and the object index.

Pure and deterministic: no IO, no clock, no randomness. Every replica that applies the
same commands in the same order reaches the same state and returns the same outcomes;
timestamps arrive inside commands. Reads are plain methods on the current state.

Invariants:
- ``applied_index`` is the log index of the last command applied; ``apply`` is called with
  strictly increasing indexes.
- The cluster-map ``epoch`` increases whenever a node is added or a field the ring depends
  on (address, zone, weight, state) changes, and when old rings are handed over;
  capacity/usage updates are stored without a bump, and re-registering an unchanged node
  changes nothing.
- Ring epochs (:mod:`gateway.ring_epochs`): ``ring_epoch`` is the epoch the current ring's
  placement (``placement_of`` the nodes) came into effect at. When a change gives a new
  placement while any bucket exists (before, no manifest can sit on any ring), the one it
  replaced is kept in ``kept_rings`` (newest first, at most ``MAX_KEPT_RINGS``) until a
  ``HandOverRings`` names a ring it was handed over to; a placement equal to a kept one
  makes that one current again. Object writes report the epoch they applied at
  (``map_epoch``) beside their commit index.
- Each bucket has its own object index (:class:`metadata.fsm.object_index.BucketIndex`): every
  key's versions as compact records (:mod:`metadata.fsm.records`), and S3's versioning rules.
  A bucket's versioning goes from "" to "Enabled"/"Suspended" and never back; a bucket
  holding any version or delete marker is not empty.
- Multipart uploads in progress live in ``uploads`` (:mod:`metadata.fsm.uploads`); they do
  not make a bucket non-empty: DeleteBucket (``discard_uploads``) discards them and returns
  their parts.
- Exactly-once: per client id, the outcome of every command not yet acknowledged by the
  client (``seq >= ack``) is remembered; a command whose seq is remembered returns the same
  outcome again without being applied. Sessions are kept for the ``MAX_SESSIONS`` most
  recently active clients, at most ``MAX_RESULTS`` outcomes each.
- Commit-age guard (garbage collection, :mod:`metadata.gc_http`): ``gc_floor`` only rises
  (``MarkCollectable``); a PutObject or PutPart naming a blob whose version id is older
  than its command's ``commit_floor`` or than ``gc_floor`` is refused (RequestTimeout), so
  no commit can reference a blob a storage node may have collected. Both values come from
  the log, so every replica, and a replay, decides the same.
- ``snapshot_chunks()`` then ``restore()`` gives a machine with identical state and
  identical snapshot bytes (see :mod:`metadata.fsm.snapshot`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Iterator

from metadata.api import commands as c
from metadata.fsm import records
from objstore import bucket_policy
from objstore import s3rules as tagging
from metadata.api.commands import Outcome
from metadata.fsm.object_index import BucketIndex
from metadata.fsm.placement_index import PlacementIndex
from objstore.repair_records import RepairOutcome
from metadata.api.results import DeleteResult, ObjectLookup, VersionListResult, WriteResult
from metadata.api.upload_records import PartList, UploadedPart
from metadata.fsm.uploads import UploadStore
from objstore.errors import (
    BucketAlreadyExists, BucketAlreadyOwnedByYou, BucketNotEmpty, InvalidArgument,
    AccessDenied, InvalidRequest, NoSuchBucket, NoSuchKey, ObjstoreError, RequestTimeout,
)
from objstore.hlc import is_version_id, version_time
from objstore.types import (
    HOLDING_STATES, NODE_STATES, WRITABLE_STATES, Bucket, ClusterMap, Credential, KeptRing, ListResult, NodeInfo,
    ObjectVersion, PartRef, Placement, Policy, placement_of,
)

MAX_SESSIONS = 10_000
MAX_RESULTS = 4_096
MAX_KEPT_RINGS = 8  # old rings kept at most; past that the oldest is dropped (gateway.ring_epochs)
CONSISTENCY_LEVELS = ("strong", "quorum", "one")


class Session:
    """Remembered outcomes of one client's unacknowledged commands."""

    __slots__ = ("floor", "results", "_ascending")

    def __init__(self, floor: int = 0, results: dict[int, Outcome] | None = None) -> None:
        self.floor = floor  # every seq below it is acknowledged or forgotten
        self.results: dict[int, Outcome] = results if results is not None else {}
        # Whether ``results`` holds its seqs in ascending order (the usual case: a client's
        # commands mostly commit in the order it numbered them).
        self._ascending = _ascending(self.results)

    def acknowledge_below(self, ack: int) -> None:
        if ack > self.floor:
            self.floor = ack
            results = self.results
            if self._ascending:  # the acknowledged ones are at the front: O(acknowledged)
                while results:
                    first = next(iter(results))
                    if first >= ack:
                        break
                    del results[first]
            else:
                self.results = {s: o for s, o in results.items() if s >= ack}
                self._ascending = _ascending(self.results)

    def remember(self, seq: int, outcome: Outcome) -> None:
        if self._ascending and self.results and seq < next(reversed(self.results)):
            self._ascending = False
        self.results[seq] = outcome
        if len(self.results) > MAX_RESULTS:
            # In ascending order the first seq is the oldest: O(1) for a client that never
            # acknowledges (every apply would otherwise scan all MAX_RESULTS seqs).
            oldest = next(iter(self.results)) if self._ascending else min(self.results)
            del self.results[oldest]
            self.floor = max(self.floor, oldest + 1)


def _ascending(results: dict[int, Outcome]) -> bool:
    seqs = list(results)
    return all(a < b for a, b in zip(seqs, seqs[1:]))


def _node_list(value: object) -> tuple[str, ...]:
    """A command's list of node ids as a placement; InvalidArgument unless it is one."""
    if not isinstance(value, (list, tuple)) or len(value) > 255 \
            or not all(isinstance(n, str) and len(n.encode(errors="replace")) <= 255 for n in value):
        raise InvalidArgument("a placement is a list of at most 255 node ids")
    return tuple(value)


def _ring_fields(n: NodeInfo) -> tuple:
    return (n.address, n.zone, n.weight, n.state)


class MetadataFSM:
    """The replicated state; see the module docstring for its invariants."""

    def __init__(self) -> None:
        self.applied_index = 0
        self.epoch = 0
        self.nodes: dict[str, NodeInfo] = {}
        self.buckets: dict[str, Bucket] = {}
        self.objects: dict[str, BucketIndex] = {}
        self.credentials: dict[str, Credential] = {}
        self.sessions: dict[str, Session] = {}
        self.atoms = records.Atoms()
        self.uploads = UploadStore()  # multipart uploads in progress (metadata.fsm.uploads)
        # Derived: blobs by node, versions below policy (metadata.fsm.placement_index).
        self.placements = PlacementIndex(self.atoms, self.nodes, lambda b, k: self.objects[b].versions(k))
        self.gc_floor = 0.0  # unix seconds: blobs with older version ids may be collected
        self.ring_epoch = 0  # the epoch the current placement came into effect at
        self.kept_rings: list[KeptRing] = []  # replaced rings not yet handed over, newest first
        self.placement: Placement = ()  # the current ring's placement (placement_of(nodes))
        self._map: ClusterMap | None = None
        self._handlers: dict[type, Callable] = {
            c.Noop: lambda cmd: None,
            c.RegisterNode: self._register_node,
            c.SetNodeState: self._set_node_state,
            c.CreateBucket: self._create_bucket,
            c.DeleteBucket: self._delete_bucket,
            c.PutCredential: self._put_credential,
            c.DeleteCredential: self._delete_credential,
            c.PutObject: self._put_new_object,
            c.DeleteObject: self._delete_object,
            c.SetBucketVersioning: self._set_bucket_versioning,
            c.SetBucketConsistency: self._set_bucket_consistency,
            c.SetBucketTags: self._set_bucket_tags,
            c.SetObjectTags: self._set_object_tags,
            c.SetBucketPolicy: self._set_bucket_policy,
            c.SetBucketAcl: self._set_bucket_acl,
            c.SetObjectAcl: self._set_object_acl,
            c.CreateMultipartUpload: lambda cmd: self.uploads.create(cmd.upload, self.get_bucket(cmd.upload.bucket)),
            c.PutPart: self._put_part,
            c.AbortMultipartUpload: lambda cmd: self.uploads.abort(cmd.bucket, cmd.key, cmd.upload_id),
            c.CompleteMultipartUpload: self._complete_upload,
            c.RepairPlacement: self._repair_placement,
            c.MarkCollectable: self._mark_collectable,
            c.SetNodeWeight: self._set_node_weight,
            c.HandOverRings: self._hand_over_rings,
        }

    # --- applying commands -----------------------------------------------------------------

    def apply(self, index: int, cmd: c.Command) -> Outcome:
        """Apply ``cmd`` committed at log ``index``; never raises for a decodable command."""
        if index <= self.applied_index:
            raise ValueError(f"apply out of order: index {index} after {self.applied_index}")
        self.applied_index = index
        if not cmd.client_id or cmd.seq <= 0:
            return self._run(cmd)
        session = self.sessions.pop(cmd.client_id, None) or Session()
        self.sessions[cmd.client_id] = session  # most recently used last
        session.acknowledge_below(cmd.ack)
        remembered = session.results.get(cmd.seq)
        if remembered is not None:
            return remembered
        if cmd.seq < session.floor:
            return Outcome.of_error(InvalidRequest(f"command {cmd.seq} of client {cmd.client_id} is stale"))
        outcome = self._run(cmd)
        session.remember(cmd.seq, outcome)
        while len(self.sessions) > MAX_SESSIONS:
            del self.sessions[next(iter(self.sessions))]
        return outcome

    def _run(self, cmd: c.Command) -> Outcome:
        try:
            value = self._handlers[type(cmd)](cmd)
        except ObjstoreError as err:
            return Outcome.of_error(err)
        if value is None:
            return Outcome()
        out = value.to_dict()
        if hasattr(value, "commit_index"):  # object writes report the index and map epoch they applied at
            out["commit_index"], out["map_epoch"] = self.applied_index, self.epoch
        return Outcome(value=out)

    def _register_node(self, cmd: c.RegisterNode) -> ClusterMap:
        node = cmd.node
        if not node.node_id or node.state not in NODE_STATES:
            raise InvalidArgument(f"invalid node {node.node_id!r} state {node.state!r}")
        old = self.nodes.get(node.node_id)
        if old != node:
            self.nodes[node.node_id] = node
            if old is None or _ring_fields(old) != _ring_fields(node):
                self._new_epoch()
            self._map = None
            self._holding_may_change(old, node)
        return self.cluster_map()

    def _set_node_state(self, cmd: c.SetNodeState) -> ClusterMap:
        if cmd.state not in NODE_STATES:
            raise InvalidArgument(f"invalid node state {cmd.state!r}; expected one of {', '.join(NODE_STATES)}")
        old = self.nodes.get(cmd.node_id)
        if old is None:
            raise InvalidArgument(f"no storage node {cmd.node_id!r}")
        if old.state != cmd.state and cmd.if_state in ("", old.state) and self._keeps_writable(cmd):
            self.nodes[cmd.node_id] = NodeInfo(**{**old.to_dict(), "state": cmd.state})
            self._new_epoch()
            self._map = None
            self._holding_may_change(old, self.nodes[cmd.node_id])
        return self.cluster_map()

    def _keeps_writable(self, cmd: c.SetNodeState) -> bool:
        """Whether ``cmd`` leaves at least ``cmd.min_writable`` writable nodes (0: no check)."""
        if cmd.min_writable <= 0:
            return True
        left = sum(1 for n in self.nodes.values() if n.node_id != cmd.node_id and n.state in WRITABLE_STATES)
        return left + (cmd.state in WRITABLE_STATES) >= cmd.min_writable

    def _set_node_weight(self, cmd: c.SetNodeWeight) -> ClusterMap:
        old = self.nodes.get(cmd.node_id)
        if old is None:
            raise InvalidArgument(f"no storage node {cmd.node_id!r}")
        if isinstance(cmd.weight, bool) or not isinstance(cmd.weight, (int, float)) or not 0 < cmd.weight <= 1000:
            raise InvalidArgument(f"a node weight is a number in (0, 1000], not {cmd.weight!r}")
        if old.weight != cmd.weight:
            self.nodes[cmd.node_id] = NodeInfo(**{**old.to_dict(), "weight": float(cmd.weight)})
            self._new_epoch()
            self._map = None
        return self.cluster_map()

    def _new_epoch(self) -> None:
        """Bump the epoch after a node change; keep the replaced ring if the placement moved
        (see the module invariants)."""
        self.epoch += 1
        placement = placement_of(self.nodes.values())
        if placement == self.placement:
            return
        if self.placement and self.buckets:
            self.kept_rings.insert(0, KeptRing(self.ring_epoch, self.placement))
        self.kept_rings = [r for r in self.kept_rings if r.placement != placement][:MAX_KEPT_RINGS]
        self.placement, self.ring_epoch = placement, self.epoch

    def _hand_over_rings(self, cmd: c.HandOverRings) -> ClusterMap:
        """See :class:`metadata.api.commands.HandOverRings`."""
        if cmd.ring_epoch == self.ring_epoch:
            keep: list[KeptRing] = []
        else:
            at = next((i for i, r in enumerate(self.kept_rings) if r.epoch == cmd.ring_epoch), None)
            keep = self.kept_rings if at is None else self.kept_rings[: at + 1]
        if keep != self.kept_rings:
            self.kept_rings = keep
            self.epoch += 1
            self._map = None
        return self.cluster_map()

    def _holding_may_change(self, old: NodeInfo | None, new: NodeInfo) -> None:
        """Re-examine the keys on a node whose copies start or stop counting."""
        if (old is not None and old.state in HOLDING_STATES) != (new.state in HOLDING_STATES):
            self.placements.node_changed(new.node_id)

    def _create_bucket(self, cmd: c.CreateBucket) -> Bucket:
        if not cmd.name:
            raise InvalidArgument("empty bucket name")
        parsed = Policy.parse(cmd.policy)
        if cmd.write_quorum:
            parsed.check_write_quorum(cmd.write_quorum)
        policy = str(parsed)
        if cmd.consistency not in CONSISTENCY_LEVELS:
            raise InvalidArgument(f"invalid consistency {cmd.consistency!r}")
        existing = self.buckets.get(cmd.name)
        if existing is not None:
            if existing.owner == cmd.owner:
                raise BucketAlreadyOwnedByYou(BucketName=cmd.name)
            raise BucketAlreadyExists(BucketName=cmd.name)
        bucket = Bucket(cmd.name, cmd.owner, cmd.created, policy, cmd.consistency, write_quorum=cmd.write_quorum)
        self.buckets[cmd.name] = bucket
        self.objects[cmd.name] = self.new_bucket_index(cmd.name)
        return bucket

    def new_bucket_index(self, name: str) -> BucketIndex:
        """An empty object index for bucket ``name``, watched by the placement index."""
        return BucketIndex(name, self.atoms, self.placements.changed)

    def _delete_bucket(self, cmd: c.DeleteBucket) -> PartList:
        """As S3: versions and delete markers make a bucket non-empty; uploads in progress
        do not (with ``discard_uploads``), they are discarded with it (their parts are
        returned as garbage)."""
        if cmd.name not in self.buckets:
            raise NoSuchBucket(BucketName=cmd.name)
        if not self.objects[cmd.name].is_empty() or (not cmd.discard_uploads and self.uploads.has_uploads(cmd.name)):
            raise BucketNotEmpty(BucketName=cmd.name)
        del self.buckets[cmd.name]
        del self.objects[cmd.name]
        self.placements.drop_bucket(cmd.name)
        return self.uploads.drop_bucket(cmd.name)

    def _put_credential(self, cmd: c.PutCredential) -> None:
        if not cmd.cred.access_key:
            raise InvalidArgument("empty access key")
        self.credentials[cmd.cred.access_key] = cmd.cred

    def _delete_credential(self, cmd: c.DeleteCredential) -> None:
        self.credentials.pop(cmd.access_key, None)

    def _check_commit_age(self, version_ids: Iterable[str], commit_floor: float) -> None:
        """Refuse a commit naming a blob that garbage collection may have taken (see the
        module invariants); ids that are not HLC timestamps are not judged."""
        floor = max(commit_floor, self.gc_floor)
        if floor <= 0:
            return
        for vid in version_ids:
            if is_version_id(vid) and version_time(vid) < floor:
                raise RequestTimeout(
                    f"The data of this write was stored at {version_time(vid):.3f} and committed too late "
                    f"(after {floor:.3f}): it may have been reclaimed. Retry the request.")

    def _put_new_object(self, cmd: c.PutObject) -> WriteResult:
        self._check_commit_age([vid for vid, _placement in cmd.version.blob_refs()], cmd.commit_floor)
        return self._put_object(cmd)

    def _put_part(self, cmd: c.PutPart) -> PartRef | None:
        if isinstance(cmd.part, UploadedPart) and isinstance(cmd.part.part, PartRef):
            self._check_commit_age([cmd.part.part.version_id], cmd.commit_floor)
        return self.uploads.put_part(cmd.bucket, cmd.key, cmd.upload_id, cmd.part)

    def _mark_collectable(self, cmd: c.MarkCollectable) -> None:
        if cmd.floor > self.gc_floor:
            self.gc_floor = float(cmd.floor)

    def _put_object(self, cmd: c.PutObject) -> WriteResult:
        v = cmd.version
        index = self._index(v.bucket)
        records.validate_version(v)
        tagging.validate(v.tags)
        # Invariant: an object's owner is its bucket's owner. A writer that saw an older
        # bucket of the same name (deleted, re-created by someone else) is refused here.
        bucket = self.buckets[v.bucket]
        if v.owner and v.owner != bucket.owner:
            raise AccessDenied(BucketName=v.bucket)
        return index.put(v, bucket.versioning, cmd.if_match, cmd.if_none_match)

    def _delete_object(self, cmd: c.DeleteObject) -> DeleteResult:
        index = self._index(cmd.bucket)
        bucket = self.buckets[cmd.bucket]
        marker = None
        if cmd.marker_id:
            if len(cmd.marker_id.encode()) > 0xFFFF:
                raise InvalidArgument("delete marker id too long")
            marker = ObjectVersion(bucket=cmd.bucket, key=cmd.key, version_id=cmd.marker_id, size=0, etag="",
                                   last_modified=cmd.now, owner=bucket.owner)
        return index.delete(cmd.key, bucket.versioning, cmd.version_id or None, marker)

    def _set_bucket_versioning(self, cmd: c.SetBucketVersioning) -> Bucket:
        if cmd.status not in ("Enabled", "Suspended"):
            raise InvalidArgument(f"invalid versioning status {cmd.status!r}; expected Enabled or Suspended")
        bucket = dataclasses.replace(self.get_bucket(cmd.name), versioning=cmd.status)
        self.buckets[cmd.name] = bucket
        return bucket

    def _set_bucket_consistency(self, cmd: c.SetBucketConsistency) -> Bucket:
        if cmd.level not in CONSISTENCY_LEVELS:
            raise InvalidArgument(f"invalid consistency {cmd.level!r}; expected one of {', '.join(CONSISTENCY_LEVELS)}")
        bucket = dataclasses.replace(self.get_bucket(cmd.name), consistency=cmd.level)
        self.buckets[cmd.name] = bucket
        return bucket

    def _set_bucket_tags(self, cmd: c.SetBucketTags) -> None:
        tagging.validate(cmd.tags, tagging.MAX_BUCKET_TAGS)
        self.buckets[cmd.name] = dataclasses.replace(self.get_bucket(cmd.name), tags=dict(cmd.tags))

    def _set_object_tags(self, cmd: c.SetObjectTags) -> WriteResult:
        index = self._index(cmd.bucket)
        tagging.validate(cmd.tags)
        return index.set_tags(cmd.key, cmd.version_id or None, cmd.tags, self.buckets[cmd.bucket].versioning)

    def _set_bucket_policy(self, cmd: c.SetBucketPolicy) -> None:
        bucket = self.get_bucket(cmd.name)
        if cmd.policy:
            bucket_policy.parse(cmd.policy, cmd.name)  # MalformedPolicy: nothing stored
        self.buckets[cmd.name] = dataclasses.replace(bucket, access_policy=cmd.policy)

    def _set_bucket_acl(self, cmd: c.SetBucketAcl) -> None:
        self.buckets[cmd.name] = dataclasses.replace(self.get_bucket(cmd.name), public_read=cmd.public_read)

    def _set_object_acl(self, cmd: c.SetObjectAcl) -> WriteResult:
        index = self._index(cmd.bucket)
        return index.set_public_read(cmd.key, cmd.version_id or None, cmd.public_read,
                                     self.buckets[cmd.bucket].versioning)

    def _complete_upload(self, cmd: c.CompleteMultipartUpload):
        """Complete a multipart upload, committing its object as PutObject would."""
        self._index(cmd.bucket)

        def current(bucket: str, key: str) -> ObjectVersion | None:
            try:
                return self.get_object(bucket, key)
            except NoSuchKey:
                return None

        def put(v: ObjectVersion) -> tuple[ObjectVersion | None, str, str]:
            result = self._put_object(c.PutObject(v, if_match=cmd.if_match, if_none_match=cmd.if_none_match))
            return result.replaced, result.version_id, result.versioning

        return self.uploads.complete(
            cmd.bucket, cmd.key, cmd.upload_id, cmd.parts, cmd.version_id, cmd.last_modified, cmd.checksums,
            put=put, current=current,
        )

    def _repair_placement(self, cmd: c.RepairPlacement) -> RepairOutcome:
        """See :class:`metadata.api.commands.RepairPlacement`."""
        expected, placement = _node_list(cmd.expected), _node_list(cmd.placement)
        if cmd.copied_at and cmd.copied_at < self.gc_floor:
            return RepairOutcome(False, "too-old")
        if cmd.upload_id:
            return self.uploads.set_part_placement(cmd.bucket, cmd.key, cmd.upload_id, cmd.part, cmd.version_id,
                                                   expected, placement)
        index = self.objects.get(cmd.bucket)
        versions = index.versions(cmd.key) if index is not None else ()
        for i, rec in enumerate(versions):
            if records.version_id_of(rec) != cmd.version_id or records.is_delete_marker(rec):
                continue
            v = records.decode(cmd.bucket, cmd.key, rec, self.atoms)
            if cmd.part == 0 and not v.parts:
                if v.placement != expected:
                    return RepairOutcome(False, "stale")
                v = dataclasses.replace(v, placement=placement)
            else:
                parts = list(v.parts)
                at = next((j for j, p in enumerate(parts) if p.number == cmd.part), None)
                if at is None:
                    return RepairOutcome(False, "deleted")
                if parts[at].placement != expected:
                    return RepairOutcome(False, "stale")
                parts[at] = dataclasses.replace(parts[at], placement=placement)
                v = dataclasses.replace(v, parts=tuple(parts))
            assert index is not None
            index.store(cmd.key, versions[:i] + (records.encode(v, self.atoms),) + versions[i + 1 :])
            return RepairOutcome(True)
        return RepairOutcome(False, "deleted")

    # --- reads -----------------------------------------------------------------------------

    def _index(self, bucket: str) -> BucketIndex:
        index = self.objects.get(bucket)
        if index is None:
            raise NoSuchBucket(BucketName=bucket)
        return index

    def cluster_map(self) -> ClusterMap:
        if self._map is None:
            self._map = ClusterMap(self.epoch, tuple(self.nodes[k] for k in sorted(self.nodes)), self.ring_epoch,
                                   tuple(self.kept_rings))
        return self._map

    def get_bucket(self, name: str) -> Bucket:
        """Raises NoSuchBucket."""
        bucket = self.buckets.get(name)
        if bucket is None:
            raise NoSuchBucket(BucketName=name)
        return bucket

    def list_buckets(self, owner: str | None = None) -> list[Bucket]:
        return [b for name, b in sorted(self.buckets.items()) if owner is None or b.owner == owner]

    def get_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectVersion:
        """The current version, or the one named by ``version_id`` (S3's form, "null"
        included). Raises NoSuchBucket, NoSuchKey (also when the current version is a delete
        marker), NoSuchVersion, MethodNotAllowed (a delete marker asked for by id); the
        delete-marker errors carry ``delete_marker`` and ``version_id`` in their extras."""
        return self._index(bucket).get(key, version_id)

    def lookup_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectLookup:
        """:meth:`get_object` with the bucket's versioning state; raises as it does."""
        return self._index(bucket).lookup(key, version_id, self.buckets[bucket].versioning)

    def list_objects(
        self, bucket: str, prefix: str = "", delimiter: str | None = None,
        start_after: str | None = None, max_keys: int = 1000,
    ) -> ListResult:
        """One page of S3 listing (see objstore.listing) over the keys whose current version
        is an object; raises NoSuchBucket."""
        return self._index(bucket).list_current(prefix, delimiter, start_after, max_keys)

    def list_objects_dict(
        self, bucket: str, prefix: str = "", delimiter: str | None = None,
        start_after: str | None = None, max_keys: int = 1000,
    ) -> dict[str, Any]:
        """:meth:`list_objects` in its wire form, each entry without its default fields
        (``ListResult.from_dict`` of it equals :meth:`list_objects`); raises NoSuchBucket."""
        return self._index(bucket).list_current_dict(prefix, delimiter, start_after, max_keys)

    def list_objects_rows(
        self, bucket: str, prefix: str = "", delimiter: str | None = None,
        start_after: str | None = None, max_keys: int = 1000, local: dict[str, Any] | None = None,
    ) -> str:
        """:meth:`list_objects` in the compact rows form as JSON text
        (:mod:`metadata.fsm.page_rows`; ``metadata.api.page_rows.read_page`` of it equals
        :meth:`list_objects`); raises NoSuchBucket."""
        return self._index(bucket).list_current_rows(prefix, delimiter, start_after, max_keys, local)

    def list_object_versions(
        self, bucket: str, prefix: str = "", delimiter: str | None = None, key_marker: str | None = None,
        version_id_marker: str | None = None, max_keys: int = 1000,
    ) -> VersionListResult:
        """One page of ListObjectVersions (metadata.fsm.version_listing); raises NoSuchBucket."""
        return self._index(bucket).list_versions(prefix, delimiter, key_marker, version_id_marker, max_keys)

    def get_credential(self, access_key: str) -> Credential | None:
        return self.credentials.get(access_key)

    def list_credentials(self) -> list[Credential]:
        return [self.credentials[k] for k in sorted(self.credentials)]

    def object_count(self) -> int:
        return sum(index.key_count() for index in self.objects.values())

    def counts(self) -> dict[str, int]:
        return {
            "buckets": len(self.buckets), "objects": self.object_count(), "nodes": len(self.nodes),
            "credentials": len(self.credentials), "sessions": len(self.sessions), "uploads": self.uploads.count(),
            **self.placements.counts(),
        }

    def bucket_usage(self) -> dict[str, dict[str, int]]:
        """Per bucket: objects, versions, delete markers, bytes (every object version) and
        multipart uploads in progress; O(buckets), from counters the index keeps on apply."""
        return {name: {**index.usage(), "uploads": self.uploads.bucket_count(name)}
                for name, index in self.objects.items()}

    # --- snapshots (encoding in metadata.fsm.snapshot) -------------------------------------

    def snapshot(self) -> bytes:
        """The whole state as versioned bytes (JSON lines)."""
        from metadata.fsm.snapshot import snapshot_bytes

        return snapshot_bytes(self)

    @classmethod
    def restore(cls, data: bytes | Iterable[bytes]) -> "MetadataFSM":
        """A machine identical to the one ``data`` (bytes or lines) was taken from."""
        from metadata.fsm.snapshot import restore

        return restore(data.splitlines(keepends=True) if isinstance(data, bytes) else data)

    def iter_versions(self, bucket: str) -> Iterator[ObjectVersion]:
        """Every version and delete marker of ``bucket``, keys ascending, each key's newest
        first (do not apply meanwhile)."""
        for key, versions in self._index(bucket).versions_from(""):
            for rec in versions:
                yield records.decode(bucket, key, rec, self.atoms)

"""Finding the version a ``quorum`` or ``one`` read serves, from commit manifests alone.

No metadata call on the way, so these reads work without a metadata majority (with the
gateway's cached bucket record; see the stale window in :mod:`gateway.context`).

- ``quorum``: R of the key's manifest replicas (``manifest_read_quorum``: R + W > N for the
  bucket's W), the manifest with the highest commit index among their answers.
- ``one``: the first manifest replica that answers with a manifest of the key, asked one
  at a time (:func:`gateway.datapath.manifests.first`).
- While a ring change is not yet handed over, R answers are needed from the key's owners
  under each kept ring epoch (:mod:`gateway.ring_epochs`).

The current version is the newest manifest's version: none or a delete marker is 404
NoSuchKey (with the delete-marker headers). A version asked for by id is the newest
manifest naming it unless a later one removed it (:func:`objstore.manifest.find_version`).
When no answering node has any manifest for the key (a key written before manifests
existed, or never written), the metadata service decides (a strong read): with no
majority that is a 503, never an invented 404.
"""
from __future__ import annotations

from dataclasses import dataclass

from gateway.context import GatewayContext
from gateway.datapath.lookup import owned_version, with_marker_headers
from gateway.datapath.manifests import Gathered, first, gather
from metadata.api.results import ObjectLookup
from objstore.errors import MethodNotAllowed, NoSuchKey
from objstore.manifest import find_version, manifest_read_quorum, manifest_replicas
from objstore.types import Bucket, Policy


@dataclass(frozen=True, slots=True)
class ManifestRead:
    """What a quorum/one read found: the version (and versioning), and the response headers
    naming how it was found."""

    found: ObjectLookup
    headers: dict[str, str]


def read_quorum(bucket: Bucket, level: str) -> int:
    """How many manifest replicas a read at ``level`` waits for."""
    return manifest_read_quorum(Policy.parse(bucket.policy), bucket.write_quorum) if level == "quorum" else 1


def _headers(got: Gathered, level: str, policy: Policy, r: int) -> dict[str, str]:
    h = {"x-objstore-replicas-read": str(got.answered)}
    if got.newest is not None:
        h["x-objstore-commit-index"] = str(got.newest.commit_index)
        w = got.newest.write_quorum
        if level == "quorum" and w and r + w <= manifest_replicas(policy):
            h["x-objstore-quorum-overlap"] = "false"  # R + W <= N: this read may miss a write
    return h


async def manifest_lookup(ctx: GatewayContext, bucket: Bucket, key: str, version_id: str | None, level: str,
                          method: str) -> ManifestRead:
    """The version a quorum/one read of ``key`` serves; the caller owns ``bucket``. Raises
    NoSuchKey/MethodNotAllowed (with delete-marker headers), NoSuchVersion,
    ServiceUnavailable (too few manifest replicas answered)."""
    policy = Policy.parse(bucket.policy)
    r = read_quorum(bucket, level)
    if level == "quorum":
        got = await gather(ctx, bucket.name, key, policy, r)
    else:
        got = await first(ctx, bucket.name, key, policy)
    headers = _headers(got, level, policy, r)
    if got.newest is None:
        return ManifestRead(await owned_version(ctx, bucket.owner, bucket.name, key, version_id, method), headers)
    if version_id is None:
        v = got.newest.version
        if v is None:
            raise NoSuchKey(Key=key, BucketName=bucket.name)
        if v.delete_marker:
            raise with_marker_headers(NoSuchKey(Key=key, delete_marker=True, version_id=v.s3_version_id), method)
        return ManifestRead(ObjectLookup(v, bucket.versioning), headers)
    v = find_version(got.manifests, version_id)
    if v is None:  # not among the manifests kept: the metadata service knows
        return ManifestRead(await owned_version(ctx, bucket.owner, bucket.name, key, version_id, method), headers)
    if v.delete_marker:
        raise with_marker_headers(MethodNotAllowed(delete_marker=True, version_id=v.s3_version_id), method)
    return ManifestRead(ObjectLookup(v, bucket.versioning), headers)

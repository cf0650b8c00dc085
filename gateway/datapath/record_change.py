"""Commit manifests of changes that rewrite a version's record without a new version:
PutObjectTagging, DeleteObjectTagging and PutObjectAcl.

Such a change commits at its own Raft index ``c``; a ``quorum`` read begun after it was
acknowledged must see it (the tag count of GET/HEAD, a version's ACL). So, like a write,
it publishes a manifest at ``c`` before the client is answered: the key's current version
read back from the metadata service (a strong read, so at least as new as ``c``; a write
committed in between makes the manifest carry that newer, committed version, which its own
manifest at a higher index supersedes anyway), and, when the change named a version that
is not the current one, that version read back as ``changed`` (for reads by version id).
Too few manifest replicas is a 503, as for a write: the change committed but cannot be
promised to quorum readers.
"""
from __future__ import annotations

from gateway.context import GatewayContext
from gateway.datapath.manifests import publish
from objstore.errors import MethodNotAllowed, NoSuchKey, NoSuchVersion
from objstore.types import Bucket, ObjectVersion, Policy


async def current_version(ctx: GatewayContext, bucket: Bucket, key: str) -> ObjectVersion | None:
    """The key's current version from the metadata service: a delete marker as one (from
    the details NoSuchKey carries), None when the key has no version."""
    try:
        return await ctx.meta.get_object(bucket.name, key)
    except NoSuchKey as err:
        if not err.extra.get("delete_marker"):
            return None
        vid = str(err.extra.get("version_id") or "null")
        return ObjectVersion(bucket=bucket.name, key=key, version_id=vid, size=0, etag="",
                             last_modified=float(err.extra.get("last_modified") or 0.0), owner=bucket.owner,
                             delete_marker=True, versioned=vid != "null")


async def publish_record_change(ctx: GatewayContext, bucket_name: str, key: str, version_id: str | None,
                                commit_index: int, map_epoch: int = 0) -> int:
    """Publish the manifest of a tag or ACL change of ``key`` (the version ``version_id``,
    None: the current one) committed at ``commit_index``; returns how many replicas stored
    it. Raises ServiceUnavailable below the manifest write quorum."""
    bucket = await ctx.bucket(bucket_name)
    current = await current_version(ctx, bucket, key)
    changed = None
    if version_id is not None and (current is None or current.s3_version_id != version_id):
        try:
            changed = (await ctx.meta.lookup_object(bucket_name, key, version_id)).version
        except (NoSuchKey, NoSuchVersion, MethodNotAllowed):
            changed = None  # removed since: a later manifest says so
    return await publish(ctx, bucket_name, key, commit_index, current, Policy.parse(bucket.policy),
                         bucket.write_quorum, changed=changed, map_epoch=map_epoch)

"""The read step several handlers share: find the version a request names, if the caller owns it.

Error shapes, as S3 answers them:
- a key's current version that is a delete marker is NoSuchKey, one asked for by id
  MethodNotAllowed; both carry ``x-amz-delete-marker: true`` and ``x-amz-version-id``
  (:func:`with_marker_headers`);
- a caller who does not own the bucket gets AccessDenied, never NoSuchKey or NoSuchVersion;
- a copy source that is a delete marker is NoSuchKey (current) or InvalidRequest (by id).
"""
from __future__ import annotations

from gateway.access import check_owner, owned_bucket
from gateway.context import GatewayContext
from gateway.copy_source import CopySource
from metadata.api.results import ObjectLookup
from objstore.errors import InvalidRequest, MethodNotAllowed, NoSuchKey, NoSuchVersion, ObjstoreError
from objstore.types import ObjectVersion


def with_marker_headers(err: ObjstoreError, method: str) -> ObjstoreError:
    """Turn the metadata service's delete-marker details on ``err`` (NoSuchKey for a current
    delete marker, MethodNotAllowed for one asked for by id) into the response headers
    S3 sends: ``x-amz-delete-marker: true`` and ``x-amz-version-id``."""
    if err.extra.pop("delete_marker", False):
        err.extra["x-amz-delete-marker"] = "true"
        vid = err.extra.pop("version_id", None)
        if vid is not None:
            err.extra["x-amz-version-id"] = vid
        err.extra.pop("last_modified", None)
        if isinstance(err, MethodNotAllowed):
            err.extra["Method"] = method
    return err


async def owned_version(ctx: GatewayContext, owner: str, bucket: str, key: str, version_id: str | None,
                        method: str) -> ObjectLookup:
    """The version asked for (current, or ``version_id``) and its bucket's versioning, if
    ``owner`` owns its bucket (an object's owner is its bucket's). Raises as the module says."""
    try:
        found = await ctx.meta.lookup_object(bucket, key, version_id)
    except (NoSuchKey, NoSuchVersion, MethodNotAllowed) as err:
        await owned_bucket(ctx, owner, bucket)  # AccessDenied rather than NoSuchKey for others
        raise with_marker_headers(err, method) from None
    check_owner(found.version, owner)
    return found


_MARKER_BY_ID = "The source of a copy request may not specifically refer to a delete marker by version id."


async def source_lookup(ctx: GatewayContext, owner: str, src: CopySource) -> ObjectLookup:
    """The version to copy (current, or the one named) and its bucket's versioning state,
    if the caller owns the bucket. Raises NoSuchBucket, AccessDenied, NoSuchKey (also for
    a current delete marker), NoSuchVersion, InvalidRequest (a delete marker by id)."""
    await owned_bucket(ctx, owner, src.bucket)
    try:
        found = await ctx.meta.lookup_object(src.bucket, src.key, src.version_id)
    except NoSuchKey:
        raise NoSuchKey(Key=src.key, BucketName=src.bucket) from None
    except MethodNotAllowed:
        raise InvalidRequest(_MARKER_BY_ID) from None
    if found.version.delete_marker:
        if src.version_id is not None:
            raise InvalidRequest(_MARKER_BY_ID)
        raise NoSuchKey(Key=src.key, BucketName=src.bucket)
    check_owner(found.version, owner)
    return found


async def is_current(ctx: GatewayContext, version: ObjectVersion) -> bool:
    """Whether ``version`` is its key's current version."""
    try:
        current = await ctx.meta.get_object(version.bucket, version.key)
    except NoSuchKey:
        return False
    return current.version_id == version.version_id

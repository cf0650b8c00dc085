"""The read steps that let non-owners in where a bucket policy or a public-read ACL allows.

The owner of a bucket goes through the ordinary ownership checks (:mod:`gateway.access`,
:mod:`gateway.datapath.lookup`); anyone else (anonymous, or signed by another owner) is
judged by :mod:`gateway.anonymous` on fresh records from the metadata service, never on
cached ones, so a revoked policy or ACL takes effect at once. A non-owner who may not list
the bucket learns nothing about which keys exist: a missing key is AccessDenied for them,
as in S3; a missing bucket is NoSuchBucket for everyone.
"""
from __future__ import annotations

from typing import Callable

from gateway.access import owned_bucket
from gateway.anonymous import is_anonymous_caller, may_list, may_read
from gateway.caller import Caller
from gateway.context import GatewayContext
from gateway.datapath.lookup import owned_version, with_marker_headers
from metadata.api.results import ObjectLookup
from objstore.errors import AccessDenied, MethodNotAllowed, NoSuchKey, NoSuchVersion
from objstore.types import Bucket


async def readable_version(ctx: GatewayContext, caller: Caller, bucket: str, key: str, version_id: str | None,
                           method: str) -> ObjectLookup:
    """The version asked for, if ``caller`` owns the bucket or everyone may read it.

    Raises NoSuchBucket; AccessDenied; NoSuchKey, NoSuchVersion, MethodNotAllowed (with
    delete-marker headers) to those who may list the bucket."""
    if not is_anonymous_caller(caller):
        try:
            return await owned_version(ctx, caller.owner, bucket, key, version_id, method)
        except AccessDenied:
            pass  # not the owner: read as anyone may
    b = await ctx.meta.get_bucket(bucket)
    try:
        found = await ctx.meta.lookup_object(bucket, key, version_id)
    except (NoSuchKey, NoSuchVersion, MethodNotAllowed) as err:
        if may_list(b):
            raise with_marker_headers(err, method) from None
        raise AccessDenied(BucketName=bucket) from None
    if not may_read(b, found.version, version_id is not None):
        raise AccessDenied(BucketName=bucket)
    return found


async def opened_bucket(ctx: GatewayContext, caller: Caller, name: str, allowed: Callable[[Bucket], bool]) -> Bucket:
    """The bucket, if ``caller`` owns it or ``allowed(bucket)`` (e.g. :func:`gateway.anonymous.may_list`)
    opens it to everyone; NoSuchBucket or AccessDenied otherwise."""
    if not is_anonymous_caller(caller):
        try:
            return await owned_bucket(ctx, caller.owner, name)
        except AccessDenied:
            pass
    b = await ctx.meta.get_bucket(name)
    if not allowed(b):
        raise AccessDenied(BucketName=name)
    return b

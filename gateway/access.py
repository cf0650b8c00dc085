"""Who may touch what: every bucket belongs to one owner, and only that owner may use it
(objects belong to their bucket's owner). Refusals are AccessDenied; a missing bucket is
NoSuchBucket."""
from __future__ import annotations

from gateway.context import GatewayContext
from objstore.errors import AccessDenied
from objstore.types import Bucket, ObjectVersion


async def owned_bucket(ctx: GatewayContext, owner: str, name: str, cached: bool = False) -> Bucket:
    """The bucket, if ``owner`` owns it; NoSuchBucket or AccessDenied otherwise.

    ``cached`` allows a record a few seconds old (for its immutable owner and policy).
    """
    bucket = await (ctx.bucket(name) if cached else ctx.meta.get_bucket(name))
    if bucket.owner != owner:
        raise AccessDenied(BucketName=name)
    return bucket


def check_owner(version: ObjectVersion, owner: str) -> None:
    """AccessDenied unless ``owner`` owns ``version`` (that is, its bucket)."""
    if version.owner != owner:
        raise AccessDenied(BucketName=version.bucket)

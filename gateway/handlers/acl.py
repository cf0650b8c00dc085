"""Canned ACLs: GetBucketAcl, PutBucketAcl, GetObjectAcl, PutObjectAcl (``?acl``).

Only the bucket's owner may use them. An ACL is set only by the ``x-amz-acl`` header with
a canned ACL objstore honours (:func:`gateway.anonymous.canned_public_read`): ``private``
(also ``bucket-owner-full-control`` on objects) or ``public-read``; an ACL document in the
body, grant headers and canned ACLs that open more are 501 NotImplemented. The ACL shown is
the one that exists: the owner's FULL_CONTROL grant, plus READ for the AllUsers group where
the bucket or version is public-read. Object ACLs address the current version or the one
``versionId`` names.
"""
from __future__ import annotations

from aiohttp import web

from gateway.access import owned_bucket
from gateway.anonymous import canned_public_read
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.datapath.body import declared_size
from gateway.datapath.lookup import owned_version, with_marker_headers
from gateway.endpoints import BucketEndpoint, VersionEndpoint
from gateway.responses import XML, owner_element
from gateway.xml import document, el
from objstore.errors import InvalidRequest, NotImplementedOp, ObjstoreError

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
_XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def acl_document(owner: str, public_read: bool) -> bytes:
    """The AccessControlPolicy S3 shows for an owner's resource, public-read or not."""
    grants = ["<Grant>", f'<Grantee {_XSI} xsi:type="CanonicalUser">', el("ID", owner), el("DisplayName", owner),
              "</Grantee>", el("Permission", "FULL_CONTROL"), "</Grant>"]
    if public_read:
        grants += ["<Grant>", f'<Grantee {_XSI} xsi:type="Group">', el("URI", ALL_USERS), "</Grantee>",
                   el("Permission", "READ"), "</Grant>"]
    return document("AccessControlPolicy", [owner_element(owner), "<AccessControlList>", *grants,
                                            "</AccessControlList>"])


def _requested_acl(request: web.Request, bucket: bool) -> bool:
    """Whether the request makes the resource public-read; 501 for an ACL document."""
    value = canned_public_read(request.headers.get("x-amz-acl"), bucket=bucket)
    if value is None:
        if declared_size(request, request[CALLER_KEY].auth) > 0:
            raise NotImplementedOp("ACL documents are not implemented; use the x-amz-acl header with "
                                   "private or public-read.")
        raise InvalidRequest("Specify a canned ACL with the x-amz-acl header.")
    return value


async def handle_get_bucket_acl(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    bucket = await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    return web.Response(body=acl_document(bucket.owner, bucket.public_read), headers=XML)


async def handle_put_bucket_acl(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    public_read = _requested_acl(request, bucket=True)
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    await ctx.meta.set_bucket_public_read(ep.bucket, public_read)
    ctx.forget_bucket(ep.bucket)
    return web.Response(status=200)


async def handle_get_object_acl(ctx: GatewayContext, request: web.Request, ep: VersionEndpoint) -> web.Response:
    found = await owned_version(ctx, request[CALLER_KEY].owner, ep.bucket, ep.key, ep.version_id, request.method)
    body = acl_document(found.version.owner, found.version.public_read)
    return web.Response(body=body, headers={**XML, **found.version_header()})


async def handle_put_object_acl(ctx: GatewayContext, request: web.Request, ep: VersionEndpoint) -> web.Response:
    public_read = _requested_acl(request, bucket=False)
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    try:
        result = await ctx.meta.set_object_public_read(ep.bucket, ep.key, public_read, ep.version_id)
    except ObjstoreError as err:
        raise with_marker_headers(err, request.method) from None
    return web.Response(status=200, headers=result.version_header())

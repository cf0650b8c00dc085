"""Access control lists: GetBucketAcl, PutBucketAcl, GetObjectAcl, PutObjectAcl (``?acl``).

Only the bucket's owner may use them. A bucket and everything in it belong to the user who
created the bucket; the one access objstore adds to the owner's is public-read (everyone may
read, see :mod:`gateway.anonymous`). The ACL shown is the one that exists: the owner's
FULL_CONTROL grant, plus READ for the AllUsers group where the bucket or version is
public-read. PutBucketAcl and PutObjectAcl set it from the ``x-amz-acl`` header
(:func:`gateway.anonymous.canned_public_read`): ``public-read``, or ``private`` (for objects
also ``bucket-owner-full-control`` and ``bucket-owner-read``), which revokes public-read;
or from an ``AccessControlPolicy`` body whose grants are all the owner's FULL_CONTROL, which
is the same as ``private``. Any other ACL document is 501 NotImplemented; canned ACLs that
open more and ``x-amz-grant-*`` headers are refused before any handler runs
(:mod:`gateway.unsupported`). Object ACLs address the current version or the one
``versionId`` names.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from aiohttp import web

from gateway.access import owned_bucket
from gateway.anonymous import canned_public_read
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.datapath.body import read_xml_body
from gateway.datapath.lookup import owned_version, with_marker_headers
from gateway.datapath.record_change import publish_record_change
from gateway.endpoints import BucketEndpoint, VersionEndpoint
from gateway.responses import XML, owner_element
from gateway.xml import child_text, document, el, local_name, parse
from objstore.errors import (InvalidRequest, MalformedXML, MissingSecurityHeader, NotImplementedOp,
                             ObjstoreError)

MAX_ACL_BODY = 64 * 1024
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def acl_document(owner: str, public_read: bool = False) -> bytes:
    """The ``AccessControlPolicy`` S3 shows for an owner's resource: the owner's
    FULL_CONTROL, and READ for AllUsers when ``public_read``."""
    grants = ["<Grant>", f'<Grantee xmlns:xsi="{XSI}" xsi:type="CanonicalUser">', el("ID", owner),
              el("DisplayName", owner), "</Grantee>", el("Permission", "FULL_CONTROL"), "</Grant>"]
    if public_read:
        grants += ["<Grant>", f'<Grantee xmlns:xsi="{XSI}" xsi:type="Group">', el("URI", ALL_USERS), "</Grantee>",
                   el("Permission", "READ"), "</Grant>"]
    return document("AccessControlPolicy", [owner_element(owner), "<AccessControlList>", *grants,
                                            "</AccessControlList>"])


def _grant(node: ET.Element) -> tuple[str | None, str | None, str | None]:
    """(grantee type, grantee id, permission) of one ``Grant``."""
    if local_name(node) != "Grant":
        raise MalformedXML(f"Unexpected element {local_name(node)} in AccessControlList.")
    grantees = [c for c in node if local_name(c) == "Grantee"]
    if len(grantees) != 1:
        raise MalformedXML("Each Grant holds one Grantee.")
    grantee = grantees[0]
    kind = grantee.get(f"{{{XSI}}}type")
    return kind, child_text(grantee, "ID"), child_text(node, "Permission")


def check_owner_only(body: bytes, owner: str) -> None:
    """Accept an ``AccessControlPolicy`` that grants ``owner`` FULL_CONTROL and nothing
    else; NotImplementedOp for any other ACL, MalformedXML for a malformed document."""
    tree = parse(body, "AccessControlPolicy", MAX_ACL_BODY)
    lists = [c for c in tree if local_name(c) == "AccessControlList"]
    if len(lists) != 1:
        raise MalformedXML("An AccessControlPolicy holds one AccessControlList.")
    owners = [c for c in tree if local_name(c) == "Owner"]
    grants = {_grant(g) for g in lists[0]}
    if (len(owners) > 1 or (owners and child_text(owners[0], "ID") != owner)
            or grants != {("CanonicalUser", owner, "FULL_CONTROL")}):
        raise NotImplementedOp("Only the ACL granting the owner FULL_CONTROL and nobody anything is supported; "
                               "use the x-amz-acl header with private or public-read.")


async def _requested_public_read(request: web.Request, bucket: bool) -> bool:
    """Whether a PutBucketAcl/PutObjectAcl makes the resource public-read (False: private).
    A canned ACL header was already checked (only ones objstore honours reach here)."""
    caller = request[CALLER_KEY]
    body = await read_xml_body(request, caller.auth, MAX_ACL_BODY)
    value = canned_public_read(request.headers.get("x-amz-acl"), bucket=bucket)
    if value is not None:
        if body.strip():
            raise InvalidRequest("Specify either a canned ACL or an ACL in the request body, not both.")
        return value
    if not body.strip():
        raise MissingSecurityHeader("Your request was missing a required header: x-amz-acl or an ACL body.")
    check_owner_only(body, caller.owner)
    return False


async def handle_get_bucket_acl(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    bucket = await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    return web.Response(body=acl_document(bucket.owner, bucket.public_read), headers=XML)


async def handle_put_bucket_acl(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    public_read = await _requested_public_read(request, bucket=True)
    await ctx.meta.set_bucket_public_read(ep.bucket, public_read)
    ctx.forget_bucket(ep.bucket)
    return web.Response(status=200)


async def handle_get_object_acl(ctx: GatewayContext, request: web.Request, ep: VersionEndpoint) -> web.Response:
    found = await owned_version(ctx, request[CALLER_KEY].owner, ep.bucket, ep.key, ep.version_id, request.method)
    body = acl_document(found.version.owner or request[CALLER_KEY].owner, found.version.public_read)
    return web.Response(body=body, headers={**XML, **found.version_header()})


async def handle_put_object_acl(ctx: GatewayContext, request: web.Request, ep: VersionEndpoint) -> web.Response:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    public_read = await _requested_public_read(request, bucket=False)
    ctx.require_metadata()
    try:
        result = await ctx.meta.set_object_public_read(ep.bucket, ep.key, public_read, ep.version_id)
    except ObjstoreError as err:
        raise with_marker_headers(err, request.method) from None
    await publish_record_change(ctx, ep.bucket, ep.key, ep.version_id, result.commit_index,  # for quorum reads
                                result.map_epoch)
    return web.Response(status=200, headers=result.version_header())

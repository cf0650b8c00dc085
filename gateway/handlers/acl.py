"""Access control lists: Get/PutBucketAcl, Get/PutObjectAcl.

objstore has one access rule: a bucket and everything in it belong to the user who created
the bucket, and only that user has access. Every ACL is therefore the owner's FULL_CONTROL
grant, and that is what GetBucketAcl and GetObjectAcl answer (an ``AccessControlPolicy``
with the owner and one grant). PutBucketAcl and PutObjectAcl succeed, changing nothing,
when what they ask for is that same ACL: the canned ``x-amz-acl: private`` (for objects
also ``bucket-owner-full-control`` and ``bucket-owner-read``, see
:mod:`gateway.unsupported`), or an ``AccessControlPolicy`` whose grants are all the owner's
FULL_CONTROL. Any other ACL would open access (or take it away) and is 501 NotImplemented;
canned ACLs and ``x-amz-grant-*`` headers are refused before any handler runs.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from aiohttp import web

from gateway.access import owned_bucket
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.datapath.body import read_xml_body
from gateway.datapath.lookup import owned_version
from gateway.endpoints import BucketEndpoint, VersionEndpoint
from gateway.responses import XML, owner_element
from gateway.xml import child_text, document, el, local_name, parse
from objstore.errors import InvalidRequest, MalformedXML, MissingSecurityHeader, NotImplementedOp

MAX_ACL_BODY = 64 * 1024
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def acl_document(owner: str) -> bytes:
    """The ``AccessControlPolicy`` of everything ``owner`` owns: their FULL_CONTROL."""
    grantee = (f'<Grantee xmlns:xsi="{XSI}" xsi:type="CanonicalUser">' + el("ID", owner)
               + el("DisplayName", owner) + "</Grantee>")
    grant = "<Grant>" + grantee + el("Permission", "FULL_CONTROL") + "</Grant>"
    return document("AccessControlPolicy", [owner_element(owner), "<AccessControlList>", grant,
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
        raise NotImplementedOp("Only the ACL granting the owner FULL_CONTROL and nobody anything is supported.")


async def _check_put(request: web.Request) -> None:
    """Accept a PutBucketAcl/PutObjectAcl that asks for the owner-only ACL (a canned ACL
    header was already checked: only equivalent ones reach here)."""
    caller = request[CALLER_KEY]
    body = await read_xml_body(request, caller.auth, MAX_ACL_BODY)
    if "x-amz-acl" in request.headers:
        if body.strip():
            raise InvalidRequest("Specify either a canned ACL or an ACL in the request body, not both.")
        return
    if not body.strip():
        raise MissingSecurityHeader("Your request was missing a required header: x-amz-acl or an ACL body.")
    check_owner_only(body, caller.owner)


async def handle_get_bucket_acl(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    bucket = await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    return web.Response(body=acl_document(bucket.owner), headers=XML)


async def handle_put_bucket_acl(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    await _check_put(request)
    return web.Response(status=200)


async def handle_get_object_acl(ctx: GatewayContext, request: web.Request, ep: VersionEndpoint) -> web.Response:
    found = await owned_version(ctx, request[CALLER_KEY].owner, ep.bucket, ep.key, ep.version_id, request.method)
    return web.Response(body=acl_document(found.version.owner or request[CALLER_KEY].owner),
                        headers={**XML, **found.version_header()})


async def handle_put_object_acl(ctx: GatewayContext, request: web.Request, ep: VersionEndpoint) -> web.Response:
    found = await owned_version(ctx, request[CALLER_KEY].owner, ep.bucket, ep.key, ep.version_id, request.method)
    await _check_put(request)
    return web.Response(status=200, headers=found.version_header())

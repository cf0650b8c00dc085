"""DeleteObjects: ``POST /bucket?delete`` with a ``<Delete>`` document of up to 1000 keys.

Invariants:
- The body must carry an integrity check, as S3 requires: ``Content-MD5`` or a flexible
  checksum (``x-amz-checksum-<alg>`` header or trailer); either is verified over the whole
  body before any key is deleted (``BodyStream``). A bad digest deletes nothing.
- The document is parsed strictly (:func:`parse_delete`): no objects, more than 1000,
  a missing ``Key`` or an unknown element is MalformedXML, and nothing is deleted.
- Each key goes through ``delete_key`` (:mod:`gateway.datapath.write`), the same path as DeleteObject, so a key (and
  a ``VersionId``) behaves exactly as a single delete would; a failure of one key is
  reported in its ``<Error>`` element and does not stop the others.
- The answer lists keys in request order; quiet mode lists only the errors.
"""
from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Mapping, Sequence

from aiohttp import web

from gateway.access import owned_bucket
from gateway.auth.checksums import DIGEST_SIZES, HEADER_PREFIX
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.datapath.body import read_xml_body
from gateway.datapath.write import delete_key
from gateway.endpoints import BucketEndpoint
from gateway.query import check_version_id
from gateway.responses import XML
from gateway.xml import document, el, local_name, parse
from metadata.api.results import DeleteResult
from objstore.errors import InternalError, InvalidRequest, MalformedXML, NotImplementedOp, ObjstoreError
from objstore.naming import validate_key

log = logging.getLogger(__name__)

MAX_KEYS = 1000
# 1000 keys of 1024 bytes each, every byte escaped as an entity, plus the markup.
MAX_BODY = 8 * 1024 * 1024
CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class DeleteEntry:
    key: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    entry: DeleteEntry
    result: DeleteResult | None = None
    error: ObjstoreError | None = None


def parse_delete(body: bytes) -> tuple[bool, list[DeleteEntry]]:
    """(quiet, entries) of a ``<Delete>`` document; raises MalformedXML, or NotImplementedOp
    for conditional deletes (ETag, LastModifiedTime or Size on an object)."""
    tree = parse(body, "Delete", max_size=MAX_BODY)
    quiet = False
    entries: list[DeleteEntry] = []
    for child in tree:
        name = local_name(child)
        if name == "Quiet":
            value = (child.text or "").strip().lower()
            if value not in ("true", "false"):
                raise MalformedXML("Quiet must be true or false.")
            quiet = value == "true"
        elif name == "Object":
            entries.append(_parse_object(child))
        else:
            raise MalformedXML(f"Unexpected element {name} in Delete.")
    if not entries:
        raise MalformedXML("The Delete document names no objects.")
    if len(entries) > MAX_KEYS:
        raise MalformedXML(f"The Delete document names {len(entries)} objects; the maximum is {MAX_KEYS}.")
    return quiet, entries


def _parse_object(node: ET.Element) -> DeleteEntry:
    key: str | None = None
    version_id: str | None = None
    for child in node:
        name = local_name(child)
        if name == "Key":
            if key is not None:
                raise MalformedXML("An Object has more than one Key.")
            key = child.text or ""  # keys keep their whitespace
        elif name == "VersionId":
            version_id = (child.text or "").strip()
        elif name in ("ETag", "LastModifiedTime", "Size"):
            raise NotImplementedOp(f"Conditional deletes ({name} in DeleteObjects) are not implemented.")
        else:
            raise MalformedXML(f"Unexpected element {name} in Object.")
    if key is None:
        raise MalformedXML("An Object has no Key.")
    return DeleteEntry(key, version_id)


def has_integrity_header(headers: Mapping[str, str]) -> bool:
    """True when the request carries Content-MD5 or a flexible checksum (header or trailer)."""
    for name, value in headers.items():
        lname = name.lower()
        if lname == "content-md5":
            return True
        if lname.startswith(HEADER_PREFIX) and lname[len(HEADER_PREFIX):] in DIGEST_SIZES:
            return True
        if lname == "x-amz-trailer" and any(
            t.strip().lower()[len(HEADER_PREFIX):] in DIGEST_SIZES
            for t in value.split(",") if t.strip().lower().startswith(HEADER_PREFIX)
        ):
            return True
    return False


def render_result(quiet: bool, outcomes: Sequence[EntryOutcome]) -> bytes:
    """The DeleteResult document: Deleted (unless quiet) and Error elements, in order."""
    parts: list[str] = []
    for o in outcomes:
        e = o.entry
        version = el("VersionId", e.version_id) if e.version_id is not None else ""
        if o.error is not None:
            parts.append("<Error>" + el("Key", e.key) + version + el("Code", o.error.code)
                         + el("Message", o.error.message) + "</Error>")
        elif not quiet:
            r = o.result or DeleteResult()
            marker = ""
            if r.delete_marker:
                marker_id = e.version_id if e.version_id is not None else r.version_id
                marker = el("DeleteMarker", True) + (el("DeleteMarkerVersionId", marker_id) if marker_id else "")
            parts.append("<Deleted>" + el("Key", e.key) + version + marker + "</Deleted>")
    return document("DeleteResult", parts)


async def _delete_all(ctx: GatewayContext, bucket: str, entries: Sequence[DeleteEntry]) -> list[EntryOutcome]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(entry: DeleteEntry) -> EntryOutcome:
        async with gate:
            try:
                validate_key(entry.key)
                check_version_id(entry.version_id)
                return EntryOutcome(entry, result=await delete_key(ctx, bucket, entry.key, entry.version_id))
            except ObjstoreError as err:
                return EntryOutcome(entry, error=err)
            except Exception:  # noqa: BLE001 - one key's fault is that key's error
                log.exception("DeleteObjects: deleting %s/%s failed", bucket, entry.key)
                return EntryOutcome(entry, error=InternalError())

    return list(await asyncio.gather(*(one(e) for e in entries)))


async def handle_delete_objects(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    caller = request[CALLER_KEY]
    if not has_integrity_header(request.headers):
        raise InvalidRequest("Missing required header for this request: Content-MD5")
    await owned_bucket(ctx, caller.owner, ep.bucket)
    quiet, entries = parse_delete(await read_xml_body(request, caller.auth, MAX_BODY))
    outcomes = await _delete_all(ctx, ep.bucket, entries)
    return web.Response(body=render_result(quiet, outcomes), headers=XML)

"""Multipart-upload calls of the metadata service, over a :class:`MetadataClient`.

Writes are commands (exactly-once through the client's session, like every command);
reads go to the routes of :mod:`metadata.upload_http`. Errors come back as the
ObjstoreError the state machine raised (NoSuchUpload, InvalidPart, ...).
"""
from __future__ import annotations

from typing import Any

from metadata.api import commands as c
from metadata.api.client import MetadataClient
from metadata.api.upload_records import (
    CompletedUpload, MultipartUpload, PartList, PartsPage, UploadedPart, UploadsPage,
)
from objstore.types import PartRef


class UploadClient:
    """Upload operations for one MetadataClient (cheap: make one per use)."""

    def __init__(self, meta: MetadataClient) -> None:
        self.meta = meta

    async def create(self, upload: MultipartUpload) -> MultipartUpload:
        """Raises NoSuchBucket, AccessDenied, InvalidRequest."""
        return await self.meta._command(c.CreateMultipartUpload(upload))

    async def put_part(self, bucket: str, key: str, upload_id: str, part: UploadedPart) -> PartRef | None:
        """Record a part; returns the part it replaced. Raises NoSuchUpload."""
        return await self.meta._command(c.PutPart(bucket, key, upload_id, part))

    async def abort(self, bucket: str, key: str, upload_id: str) -> PartList:
        """Remove an upload; returns its parts. Raises NoSuchUpload."""
        return await self.meta._command(c.AbortMultipartUpload(bucket, key, upload_id))

    async def complete(
        self, bucket: str, key: str, upload_id: str, parts: list[list[Any]], version_id: str,
        last_modified: float, checksums: dict[str, str] | None = None, *, if_match: str | None = None,
        if_none_match: bool = False,
    ) -> CompletedUpload:
        """``parts``: ``[number, etag, {algorithm: value}]`` rows; the conditions as PutObject's.
        Raises NoSuchUpload, InvalidPart, InvalidPartOrder, EntityTooSmall, MalformedXML,
        BadDigest, PreconditionFailed."""
        return await self.meta._command(c.CompleteMultipartUpload(
            bucket, key, upload_id, parts, version_id, last_modified, dict(checksums or {}),
            if_match or "", if_none_match))

    async def get(self, bucket: str, key: str, upload_id: str) -> MultipartUpload:
        """Raises NoSuchUpload."""
        d = await self.meta._call("GET", "/v1/upload", {"bucket": bucket, "key": key, "upload_id": upload_id})
        return MultipartUpload.from_dict(d["upload"])

    async def list_parts(self, bucket: str, key: str, upload_id: str, marker: int = 0,
                         max_parts: int = 1000) -> PartsPage:
        """Raises NoSuchUpload."""
        q = {"bucket": bucket, "key": key, "upload_id": upload_id, "marker": marker, "max_parts": max_parts}
        return PartsPage.from_dict(await self.meta._call("GET", "/v1/upload/parts", q))

    async def list_uploads(
        self, bucket: str, prefix: str = "", delimiter: str | None = None, key_marker: str | None = None,
        upload_id_marker: str | None = None, max_uploads: int = 1000,
    ) -> UploadsPage:
        """Raises NoSuchBucket."""
        q = {"bucket": bucket, "prefix": prefix, "delimiter": delimiter, "key_marker": key_marker,
             "upload_id_marker": upload_id_marker, "max_uploads": max_uploads}
        return UploadsPage.from_dict(await self.meta._call("GET", "/v1/uploads", q))

    async def stale(self, before: float, limit: int = 1000) -> list[MultipartUpload]:
        """Uploads in any bucket initiated before ``before`` (unix seconds)."""
        d = await self.meta._call("GET", "/v1/uploads/stale", {"before": repr(before), "limit": limit})
        return [MultipartUpload.from_dict(u) for u in d["uploads"]]

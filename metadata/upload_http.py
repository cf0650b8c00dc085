"""The metadata node's read API for multipart uploads (writes are commands: /v1/command).

Routes (cluster-secret auth like every internal route; errors as objstore error JSON):

    GET /v1/upload        ?bucket=&key=&upload_id=            -> {"upload": MultipartUpload}
    GET /v1/upload/parts  ?bucket=&key=&upload_id=[&marker=&max_parts=] -> PartsPage
    GET /v1/uploads       ?bucket=[&prefix=&delimiter=&key_marker=&upload_id_marker=&max_uploads=]
                                                              -> UploadsPage
    GET /v1/uploads/stale ?before=<unix seconds>[&limit=]      -> {"uploads": [MultipartUpload]}
"""
from __future__ import annotations

from typing import Callable

from aiohttp import web

from objstore.errors import InvalidArgument

Rep = Callable[[web.Request], object]


def _q(request: web.Request, name: str, required: bool = False) -> str | None:
    value = request.query.get(name)
    if value is None and required:
        raise InvalidArgument(f"missing query parameter {name!r}")
    return value


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"{name} must be an integer") from None


def _ids(request: web.Request) -> tuple[str, str, str]:
    return _q(request, "bucket", True), _q(request, "key", True), _q(request, "upload_id", True)  # type: ignore[return-value]


def add_routes(app: web.Application, replicator: Callable[[web.Request], object]) -> None:
    """Register the upload read routes; ``replicator(request)`` is the node's Replicator."""

    async def get_upload(request: web.Request) -> web.Response:
        b, k, u = _ids(request)
        upload = await replicator(request).read(lambda f: f.uploads.get(b, k, u))  # type: ignore[attr-defined]
        return web.json_response({"upload": upload.to_dict()})

    async def get_parts(request: web.Request) -> web.Response:
        b, k, u = _ids(request)
        marker, max_parts = _int(request, "marker", 0), _int(request, "max_parts", 1000)
        page = await replicator(request).read(  # type: ignore[attr-defined]
            lambda f: f.uploads.list_parts(b, k, u, marker, max_parts))
        return web.json_response(page.to_dict())

    async def get_uploads(request: web.Request) -> web.Response:
        b = _q(request, "bucket", True)
        prefix = _q(request, "prefix") or ""
        delimiter = _q(request, "delimiter") or None
        key_marker, id_marker = _q(request, "key_marker"), _q(request, "upload_id_marker")
        max_uploads = _int(request, "max_uploads", 1000)

        def read(f):  # noqa: ANN001, ANN202
            f.get_bucket(b)  # NoSuchBucket
            return f.uploads.list_uploads(b, prefix, delimiter, key_marker, id_marker, max_uploads)

        page = await replicator(request).read(read)  # type: ignore[attr-defined]
        return web.json_response(page.to_dict())

    async def get_stale(request: web.Request) -> web.Response:
        try:
            before = float(_q(request, "before", True))  # type: ignore[arg-type]
        except ValueError:
            raise InvalidArgument("before must be a number") from None
        limit = _int(request, "limit", 1000)
        found = await replicator(request).read(lambda f: f.uploads.stale(before, limit))  # type: ignore[attr-defined]
        return web.json_response({"uploads": [u.to_dict() for u in found]})

    r = app.router
    r.add_get("/v1/upload", get_upload, name="get_upload")
    r.add_get("/v1/upload/parts", get_parts, name="list_parts")
    r.add_get("/v1/uploads", get_uploads, name="list_uploads")
    r.add_get("/v1/uploads/stale", get_stale, name="stale_uploads")

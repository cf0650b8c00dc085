"""The wire form of ``PUT /blobs/batch``: several small blob writes to one storage node in one call.

A request body is one line of JSON, ``{"blobs": [{"vid", "shard", "bucket", "key",
"policy", "size"}, ...]}`` (JSON escapes every newline inside strings, so the first
``\\n`` ends it), followed by the blobs' bytes back to back, in the order listed. The
call is signed over the whole body (``sha256:`` body tag), so the placement of every
blob is covered by the signature as a single write's headers are.

The answer is ``{"results": [...]}``, one entry per blob in the same order: ``{"size",
"xxh64"}`` (what a single ``PUT /blobs/...`` answers) once that blob is durable, or
``{"error": {"code", "message", "extra"}}`` (what a single write would have failed with).

Invariants: a request is decoded whole before anything is stored, so a malformed one
(bad JSON, a field missing or of the wrong type, a name that is not UTF-8 text, an
invalid blob id, sizes that do not add up to the bytes that follow, more than
:data:`MAX_BLOBS` blobs) is refused as a whole
with InvalidArgument and stores nothing. :data:`MAX_BODY` bounds a request's bytes (the
node's lean front and aiohttp both take bodies up to 1 MiB).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from objstore.errors import InternalError, InvalidArgument, ObjstoreError, error_from_code
from objstore.node.blob import BlobId

PATH = "/blobs/batch"
MAX_BLOBS = 256  # blobs in one request
MAX_BODY = 1024 * 1024  # bytes in one request (head and blobs)
_FIELDS = ("vid", "shard", "bucket", "key", "policy", "size")


@dataclass(frozen=True, slots=True)
class BlobWrite:
    """One blob of a batch: where it belongs and its bytes."""

    version_id: str
    shard: int
    bucket: str
    key: str
    policy: str
    data: bytes | memoryview

    @property
    def size(self) -> int:
        return len(self.data)


def encode_request(blobs: Sequence[BlobWrite]) -> bytes:
    """The body of a ``PUT /blobs/batch`` carrying ``blobs``."""
    head = json.dumps({"blobs": [
        {"vid": b.version_id, "shard": b.shard, "bucket": b.bucket, "key": b.key, "policy": b.policy,
         "size": len(b.data)} for b in blobs]}, ensure_ascii=False, separators=(",", ":")).encode()
    return b"".join([head, b"\n", *(b.data for b in blobs)])


def _text(s: str) -> bool:
    """Whether ``s`` encodes as UTF-8 (JSON's ``\\ud800`` escapes decode to lone surrogates,
    which no blob header can hold)."""
    if s.isascii():
        return True
    try:
        s.encode()
    except UnicodeEncodeError:
        return False
    return True


def _malformed(why: str) -> InvalidArgument:
    return InvalidArgument(f"malformed blob batch: {why}")


def decode_request(body: bytes) -> list[tuple[BlobId, BlobWrite]]:
    """The blobs of a request body, each with its blob id (views into ``body``); raises
    InvalidArgument (nothing is to be stored) if any part of it is malformed."""
    if len(body) > MAX_BODY:
        raise _malformed(f"{len(body)} bytes, at most {MAX_BODY} are taken")
    end = body.find(b"\n")
    if end < 0:
        raise _malformed("no head line")
    try:
        head = json.loads(body[:end])
        listed = head["blobs"]
    except (ValueError, KeyError, TypeError):
        raise _malformed('the head line is not {"blobs": [...]}') from None
    if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_BLOBS:
        raise _malformed(f"it lists 1 to {MAX_BLOBS} blobs")
    data = memoryview(body)
    at = end + 1
    out: list[tuple[BlobId, BlobWrite]] = []
    for i, d in enumerate(listed):
        if not isinstance(d, dict) or any(f not in d for f in _FIELDS):
            raise _malformed(f"blob {i} lacks one of {', '.join(_FIELDS)}")
        vid, shard, size = d["vid"], d["shard"], d["size"]
        if not all(isinstance(d[f], str) for f in ("vid", "bucket", "key", "policy")):
            raise _malformed(f"blob {i}: vid, bucket, key and policy are strings")
        if not all(_text(d[f]) for f in ("bucket", "key", "policy")):
            raise _malformed(f"blob {i}: bucket, key and policy are Unicode text (no lone surrogate)")
        if type(shard) is not int or type(size) is not int or size < 0:
            raise _malformed(f"blob {i}: shard and size are whole numbers")
        if at + size > len(body):
            raise _malformed(f"blob {i} ends past the body ({len(body) - end - 1} bytes of blobs)")
        try:
            bid = BlobId(vid, shard)
        except InvalidArgument as err:
            raise _malformed(f"blob {i}: {err.message}") from None
        out.append((bid, BlobWrite(vid, shard, d["bucket"], d["key"], d["policy"], data[at:at + size])))
        at += size
    if at != len(body):
        raise _malformed(f"{len(body) - at} bytes follow the last blob")
    return out


def encode_answer(results: Sequence[tuple[int, str] | ObjstoreError]) -> bytes:
    """The answer: per blob its (size, xxh64 hex) or the error that failed it."""
    parts = []
    for r in results:
        if isinstance(r, ObjstoreError):
            parts.append(json.dumps({"error": r.to_dict()}, ensure_ascii=False, default=str).encode())
        else:
            parts.append(b'{"size": %d, "xxh64": "%s"}' % (r[0], r[1].encode("ascii")))
    return b'{"results": [' + b", ".join(parts) + b"]}"


def decode_answer(raw: bytes, count: int) -> list[dict[str, Any] | ObjstoreError]:
    """Per blob ``{"size", "xxh64"}`` or its error (rebuilt as its ObjstoreError class);
    raises InternalError if the answer is not JSON with ``count`` results."""
    try:
        results = json.loads(raw)["results"]
    except (ValueError, KeyError, TypeError):
        raise InternalError(f"a blob batch answer is not {{\"results\": [...]}}: {raw[:200]!r}") \
            from None
    if not isinstance(results, list) or len(results) != count:
        got = len(results) if isinstance(results, list) else "no"
        raise InternalError(f"a blob batch answer has {got} results for {count} blobs")
    out: list[dict[str, Any] | ObjstoreError] = []
    for r in results:
        err = r.get("error") if isinstance(r, dict) else None
        if isinstance(err, dict):
            out.append(error_from_code(str(err.get("code", "InternalError")), err.get("message"),
                                       err.get("extra") if isinstance(err.get("extra"), dict) else None))
        elif isinstance(r, dict) and "size" in r and "xxh64" in r:
            out.append(r)
        else:
            out.append(InternalError(f"a blob batch answer holds {r!r}"))
    return out

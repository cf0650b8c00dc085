"""Compact in-memory form of object version records for the metadata object index.

The index may hold millions of keys, so each current version is kept as one ``bytes``
object (about 130 bytes for a typical record) instead of a dataclass with a dict per field.
Strings that repeat across objects (content type, policy, owner, placement) are stored once
in an :class:`Atoms` table and referenced by number.

Layout (little endian): ``size q | last_modified d | ring_epoch Q | content_type I |
policy I | owner I | placement I | flags B | version_id (u16 length + UTF-8) | etag |
extras``. The etag is 16 raw bytes when it is a plain hex MD5 (flag ``ETAG_MD5``), else u16
length + UTF-8. ``extras`` (flag ``EXTRAS``) is the JSON of the non-empty headers, user
metadata and checksums.

Invariants: ``decode(encode(v)) == v`` for every valid version; the bucket and key are not
stored (the index holds them); the atom table only grows and is private to one process
(snapshots store decoded records, never atom numbers).
"""
from __future__ import annotations

import json
import re
import struct
from typing import Any, Hashable

from objstore.errors import InvalidArgument, KeyTooLongError
from objstore.types import ObjectVersion

_HEAD = struct.Struct("<qdQIIIIB")
_U16 = struct.Struct("<H")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")

DELETE_MARKER, ETAG_MD5, EXTRAS = 1, 2, 4
MAX_KEY_BYTES = 1024


class Atoms:
    """An append-only table of repeated values (strings, tuples of strings)."""

    __slots__ = ("_values", "_ids")

    def __init__(self) -> None:
        self._values: list[Any] = []
        self._ids: dict[Hashable, int] = {}

    def id_of(self, value: Hashable) -> int:
        i = self._ids.get(value)
        if i is None:
            i = len(self._values)
            self._values.append(value)
            self._ids[value] = i
        return i

    def value(self, i: int) -> Any:
        return self._values[i]

    def __len__(self) -> int:
        return len(self._values)


def validate_version(v: ObjectVersion) -> None:
    """Raise KeyTooLongError / InvalidArgument when ``v`` cannot be indexed."""
    if not v.key:
        raise InvalidArgument("empty object key")
    if len(v.key.encode()) > MAX_KEY_BYTES:
        raise KeyTooLongError(f"key is longer than {MAX_KEY_BYTES} bytes")
    if not 0 <= v.size < 2**63:
        raise InvalidArgument(f"invalid object size {v.size}")
    if not 0 <= v.ring_epoch < 2**64:
        raise InvalidArgument(f"invalid ring epoch {v.ring_epoch}")
    if len(v.version_id.encode()) > 0xFFFF or len(v.etag.encode()) > 0xFFFF:
        raise InvalidArgument("version id or etag too long")


def encode(v: ObjectVersion, atoms: Atoms) -> bytes:
    """The compact record of ``v`` (call :func:`validate_version` first)."""
    flags = DELETE_MARKER if v.delete_marker else 0
    if _MD5_RE.match(v.etag):
        flags |= ETAG_MD5
        etag = bytes.fromhex(v.etag)
    else:
        raw = v.etag.encode()
        etag = _U16.pack(len(raw)) + raw
    extras = b""
    if v.headers or v.user_meta or v.checksums:
        flags |= EXTRAS
        ex = {"h": v.headers, "m": v.user_meta, "c": v.checksums}
        extras = json.dumps({k: x for k, x in ex.items() if x}, ensure_ascii=False, separators=(",", ":")).encode()
    vid = v.version_id.encode()
    head = _HEAD.pack(
        v.size, float(v.last_modified), v.ring_epoch,
        atoms.id_of(v.content_type), atoms.id_of(v.policy), atoms.id_of(v.owner),
        atoms.id_of(tuple(v.placement)), flags,
    )
    return b"".join((head, _U16.pack(len(vid)), vid, etag, extras))


def decode(bucket: str, key: str, rec: bytes, atoms: Atoms) -> ObjectVersion:
    """The ObjectVersion stored in ``rec`` for ``bucket``/``key``."""
    size, last_modified, ring_epoch, ct, policy, owner, placement, flags = _HEAD.unpack_from(rec)
    pos = _HEAD.size
    (n,) = _U16.unpack_from(rec, pos)
    pos += 2
    version_id = rec[pos : pos + n].decode()
    pos += n
    if flags & ETAG_MD5:
        etag = rec[pos : pos + 16].hex()
        pos += 16
    else:
        (n,) = _U16.unpack_from(rec, pos)
        pos += 2
        etag = rec[pos : pos + n].decode()
        pos += n
    ex: dict[str, Any] = json.loads(rec[pos:]) if flags & EXTRAS else {}
    return ObjectVersion(
        bucket=bucket, key=key, version_id=version_id, size=size, etag=etag,
        last_modified=last_modified, content_type=atoms.value(ct),
        headers=ex.get("h", {}), user_meta=ex.get("m", {}), policy=atoms.value(policy),
        placement=atoms.value(placement), ring_epoch=ring_epoch, checksums=ex.get("c", {}),
        delete_marker=bool(flags & DELETE_MARKER), owner=atoms.value(owner),
    )

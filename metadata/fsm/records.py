"""Compact in-memory form of object version records for the metadata object index.

The index may hold millions of keys, so each current version is kept as one ``bytes``
object (about 130 bytes for a typical record) instead of a dataclass with a dict per field.
Strings that repeat across objects (content type, policy, owner, placement) are stored once
in an :class:`Atoms` table and referenced by number.

Layout (little endian): ``size q | last_modified d | ring_epoch Q | content_type I |
policy I | owner I | placement I | flags B | version_id (u16 length + UTF-8) | etag |
extras``. The etag is 16 raw bytes when it is a plain hex MD5 (flag ``ETAG_MD5``), else u16
length + UTF-8. ``extras`` (flag ``EXTRAS``) is the JSON of the non-empty headers, user
metadata, checksums, tags ("t"), the public-read flag ("r", only when set; absent in records
from before canned ACLs) and, for a multipart object, its parts list ("p",
:mod:`metadata.fsm.part_codec`). Flag ``VERSIONED`` marks a version written while the bucket's
versioning was Enabled (clear: the key's "null" version); ``DELETE_MARKER`` a delete marker.

Invariants: ``decode(encode(v)) == v`` for every valid version; the bucket and key are not
stored (the index holds them); the atom table only grows and is private to one process
(snapshots store rows of plain values, :func:`to_row`, never atom numbers). A 12-field row
(snapshot format 1 and 2, from before versioning) still loads, as a null version.
"""
from __future__ import annotations

import dataclasses
import json
import re
import struct
from typing import Any, Hashable

from metadata.fsm import part_codec
from objstore.errors import InvalidArgument, KeyTooLongError
from objstore.types import ObjectVersion

_HEAD = struct.Struct("<qdQIIIIB")
_U16 = struct.Struct("<H")
_SIZE = struct.Struct("<q")  # the first field of _HEAD
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")

DELETE_MARKER, ETAG_MD5, EXTRAS, VERSIONED = 1, 2, 4, 8
_FLAGS_AT = _HEAD.size - 1  # offset of the flags byte
_HEAD_SIZE = _HEAD.size
_head_from, _u16_from = _HEAD.unpack_from, _U16.unpack_from
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
    ex = {"h": v.headers, "m": v.user_meta, "c": v.checksums, "p": part_codec.pack(v.parts) if v.parts else None,
          "t": v.tags, "r": v.public_read}
    return _pack(
        v.version_id, v.size, v.etag, v.last_modified, v.content_type, v.policy,
        tuple(v.placement), v.ring_epoch, v.owner, v.delete_marker,
        {k: x for k, x in ex.items() if x}, atoms, v.versioned,
    )


def _pack(
    version_id: str, size: int, etag: str, last_modified: float, content_type: str, policy: str,
    placement: tuple[str, ...], ring_epoch: int, owner: str, delete_marker: bool,
    extras: dict[str, Any] | None, atoms: Atoms, versioned: bool = False,
) -> bytes:
    flags = (DELETE_MARKER if delete_marker else 0) | (VERSIONED if versioned else 0)
    if _MD5_RE.match(etag):
        flags |= ETAG_MD5
        etag_bytes = bytes.fromhex(etag)
    else:
        raw = etag.encode()
        etag_bytes = _U16.pack(len(raw)) + raw
    extras_bytes = b""
    if extras:
        flags |= EXTRAS
        extras_bytes = json.dumps(extras, ensure_ascii=False, separators=(",", ":")).encode()
    vid = version_id.encode()
    head = _HEAD.pack(
        size, float(last_modified), ring_epoch, atoms.id_of(content_type), atoms.id_of(policy),
        atoms.id_of(owner), atoms.id_of(placement), flags,
    )
    return b"".join((head, _U16.pack(len(vid)), vid, etag_bytes, extras_bytes))


def _unpack(rec: bytes, atoms: Atoms) -> list[Any]:
    """``[version_id, size, etag, last_modified, content_type, policy, placement,
    ring_epoch, owner, delete_marker, extras, versioned]`` of a record."""
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
    extras = json.loads(rec[pos:]) if flags & EXTRAS else None
    return [
        version_id, size, etag, last_modified, atoms.value(ct), atoms.value(policy),
        atoms.value(placement), ring_epoch, atoms.value(owner), bool(flags & DELETE_MARKER), extras,
        bool(flags & VERSIONED),
    ]


# ObjectVersion's fields with a default, and that default: left out of a listed entry.
_DEFAULTS = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
             for f in dataclasses.fields(ObjectVersion)
             if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
_EXTRA_FIELDS = (("h", "headers"), ("m", "user_meta"), ("c", "checksums"), ("t", "tags"))


def listed_dict(bucket: str, key: str, rec: bytes, atoms: Atoms) -> dict[str, Any]:
    """The JSON form of a listed version (no parts list), built from the record without an
    ObjectVersion: ``decode(..., parts=False).to_dict()`` with every field at its default
    left out (``ObjectVersion.from_dict`` fills them back in), so a 1000-key page costs
    less to build, send and read."""
    vid, size, etag, lm, ct, policy, placement, epoch, owner, dm, extras, versioned = _unpack(rec, atoms)
    d: dict[str, Any] = {"bucket": bucket, "key": key, "version_id": vid, "size": size, "etag": etag,
                         "last_modified": lm}
    defaults = _DEFAULTS
    if ct != defaults["content_type"]:
        d["content_type"] = ct
    if policy != defaults["policy"]:
        d["policy"] = policy
    if placement:
        d["placement"] = list(placement)
    if epoch:
        d["ring_epoch"] = epoch
    if dm:
        d["delete_marker"] = True
    if owner:
        d["owner"] = owner
    if versioned:
        d["versioned"] = True
    if extras:
        for short, name in _EXTRA_FIELDS:
            if extras.get(short):
                d[name] = extras[short]
        if extras.get("r"):
            d["public_read"] = True
    return d


def decode(bucket: str, key: str, rec: bytes, atoms: Atoms, parts: bool = True) -> ObjectVersion:
    """The ObjectVersion stored in ``rec`` for ``bucket``/``key`` (without its parts list
    when ``parts`` is False: listings need only the size and ETag)."""
    vid, size, etag, lm, ct, policy, placement, epoch, owner, dm, extras, versioned = _unpack(rec, atoms)
    ex = extras or {}
    return ObjectVersion(
        bucket=bucket, key=key, version_id=vid, size=size, etag=etag, last_modified=lm,
        content_type=ct, headers=ex.get("h", {}), user_meta=ex.get("m", {}), policy=policy,
        placement=placement, ring_epoch=epoch, checksums=ex.get("c", {}), delete_marker=dm, owner=owner,
        parts=part_codec.unpack(ex["p"]) if parts and "p" in ex else (), tags=ex.get("t", {}), versioned=versioned,
        public_read=bool(ex.get("r", False)),
    )


# --- fields read without decoding the whole record -------------------------------------------


def is_delete_marker(rec: bytes) -> bool:
    return bool(rec[_FLAGS_AT] & DELETE_MARKER)


def size_of(rec: bytes) -> int:
    """The object size stored in a record (0 for a delete marker)."""
    return _SIZE.unpack_from(rec)[0]


def is_versioned(rec: bytes) -> bool:
    return bool(rec[_FLAGS_AT] & VERSIONED)


def version_id_of(rec: bytes) -> str:
    """The stored (blob) version id of a record."""
    (n,) = _U16.unpack_from(rec, _HEAD.size)
    return rec[_HEAD.size + 2 : _HEAD.size + 2 + n].decode()


def s3_version_id_of(rec: bytes) -> str:
    """The version id S3 clients see: the stored id, or "null" for a null version."""
    return version_id_of(rec) if rec[_FLAGS_AT] & VERSIONED else "null"


def to_row(key: str, rec: bytes, atoms: Atoms) -> list[Any]:
    """A record as a plain JSON row ``[key, version_id, size, etag, last_modified,
    content_type, policy, placement, ring_epoch, owner, delete_marker, extras, versioned]``
    for snapshots: independent of this process's atom numbers."""
    # _unpack inlined (a snapshot calls this for every record); the placement stays a
    # tuple: JSON writes it as a list.
    size, last_modified, ring_epoch, ct, policy, owner, placement, flags = _head_from(rec)
    (n,) = _u16_from(rec, _HEAD_SIZE)
    pos = _HEAD_SIZE + 2 + n
    version_id = rec[_HEAD_SIZE + 2 : pos].decode()
    if flags & ETAG_MD5:
        etag = rec[pos : pos + 16].hex()
        pos += 16
    else:
        (n,) = _u16_from(rec, pos)
        etag = rec[pos + 2 : pos + 2 + n].decode()
        pos += 2 + n
    v = atoms._values
    return [key, version_id, size, etag, last_modified, v[ct], v[policy], v[placement], ring_epoch, v[owner],
            bool(flags & DELETE_MARKER), json.loads(rec[pos:]) if flags & EXTRAS else None, bool(flags & VERSIONED)]


_json_str = json.encoder.encode_basestring  # type: ignore[attr-defined]  # C; as json.dumps(ensure_ascii=False)
_MID_FLAGS = DELETE_MARKER | VERSIONED


def _json_num(x: float) -> str:
    return repr(x) if x - x == 0 else json.dumps(x)  # NaN and infinities as json.dumps writes them


def row_json(key: str, rec: bytes, atoms: Atoms, mids: dict[tuple[int, ...], str]) -> str:
    """:func:`to_row` as JSON text, the text ``json.dumps(to_row(...), ensure_ascii=False,
    separators=(",", ":"))`` gives, written without building the row (a snapshot writes
    one per record). ``mids`` caches the text of the fields records share (content type,
    policy, placement, epoch, owner, delete marker) by their atoms: pass one dict per
    snapshot (it holds at most one entry per combination in use)."""
    size, last_modified, ring_epoch, ct, policy, owner, placement, flags = _head_from(rec)
    mid_key = (ct, policy, placement, ring_epoch, owner, flags & _MID_FLAGS)
    mid = mids.get(mid_key)
    if mid is None:
        v = atoms._values
        mid = mids[mid_key] = "," + json.dumps([v[ct], v[policy], v[placement], ring_epoch, v[owner],
                                               bool(flags & DELETE_MARKER)], ensure_ascii=False,
                                              separators=(",", ":"))[1:-1] + ","
    (n,) = _u16_from(rec, _HEAD_SIZE)
    pos = _HEAD_SIZE + 2 + n
    version_id = rec[_HEAD_SIZE + 2 : pos].decode()
    if flags & ETAG_MD5:
        etag = f'"{rec[pos : pos + 16].hex()}"'  # hex digits: nothing to escape
        pos += 16
    else:
        (n,) = _u16_from(rec, pos)
        etag = _json_str(rec[pos + 2 : pos + 2 + n].decode())
        pos += 2 + n
    # The extras are stored as the JSON text json.dumps wrote with these settings: spliced as is.
    extras = rec[pos:].decode() if flags & EXTRAS else "null"
    lm = repr(last_modified) if last_modified - last_modified == 0 else _json_num(last_modified)
    return (f"[{_json_str(key)},{_json_str(version_id)},{size},{etag},{lm}{mid}"
            f"{extras},{'true' if flags & VERSIONED else 'false'}]")


def from_row(row: list[Any], atoms: Atoms) -> tuple[str, bytes]:
    """The key and compact record of a snapshot row (inverse of :func:`to_row`); a 12-field
    row (from before versioning) is a null version."""
    key, vid, size, etag, lm, ct, policy, placement, epoch, owner, dm, extras, *rest = row
    versioned = bool(rest[0]) if rest else False
    return key, _pack(vid, size, etag, lm, ct, policy, tuple(placement), epoch, owner, dm, extras, atoms, versioned)


def own_blob(rec: bytes) -> tuple[int, int, int] | None:
    """``(size, policy atom, placement atom)`` of a record whose only blob is its own (not a
    delete marker, no parts list), else None: :func:`blob_placements` without decoding."""
    size, _, _, _, policy, _, placement, flags = _HEAD.unpack_from(rec)
    if flags & DELETE_MARKER or (flags & EXTRAS and b'"p":' in rec):
        return None
    return size, policy, placement


def blob_placements(rec: bytes, atoms: Atoms) -> tuple[str, tuple[tuple[int, int, tuple[str, ...], str], ...]]:
    """The policy of a record and its blobs as ``(part number, size, placement, blob id)``:
    part 0 (blob id: the version id) for a version's own blob, one row per part (blob id:
    the part's version id) for a multipart object, none for a delete marker. Reads the
    head only unless the record may hold a parts list."""
    size, _, _, _, policy, _, placement, flags = _HEAD.unpack_from(rec)
    if flags & DELETE_MARKER:
        return atoms.value(policy), ()
    if flags & EXTRAS and b'"p":' in rec:
        extras = _unpack(rec, atoms)[10] or {}
        if "p" in extras:
            parts = part_codec.unpack(extras["p"])
            return atoms.value(policy), tuple((p.number, p.size, p.placement, p.version_id) for p in parts)
    return atoms.value(policy), ((0, size, atoms.value(placement), version_id_of(rec)),)

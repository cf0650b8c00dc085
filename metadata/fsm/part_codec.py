"""Compact encoding of a multipart object's parts list, for the metadata object index.

A multipart object may have up to 10,000 parts, each its own blob; its version record
lists them all. Kept as JSON that would be ~150 bytes a part; this packs one part into
about 45 bytes (base64 text, so it fits in the record's JSON extras and in snapshot rows
unchanged): the ETag as 16 raw bytes, a version id of the usual HLC form
(``<16 hex>-<gateway>``) as 8 bytes plus a reference into a table of gateway suffixes, and
the placement as a reference into a table of distinct node lists.

Layout (little endian): ``version B | count H | suffixes H × (len B + utf8) |
placements H × (nodes B × (len B + utf8)) | parts``, each part
``number H | size Q | etag 16s | vid: suffix H + 8s (suffix 0xFFFF: len H + utf8) |
placement H | checksums B × (name: len B + utf8, value: len B + utf8)``.

Invariants: ``unpack(pack(parts)) == parts`` for every valid parts tuple; ``pack`` raises
InvalidArgument (never anything else) for an invalid part, so a state machine may call it
while applying a command.
"""
from __future__ import annotations

import base64
import binascii
import re
import struct
from typing import Any

from objstore.errors import InvalidArgument
from objstore.types import PartRef

FORMAT = 1
MAX_PARTS = 10_000
RAW_VID = 0xFFFF
_HLC_RE = re.compile(r"^([0-9a-f]{16})-(.+)$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_B, _H = struct.Struct("<B"), struct.Struct("<H")
_PART = struct.Struct("<HQ16s")


def _short(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise InvalidArgument(f"{what} must be a string")
    try:
        raw = text.encode()
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} is not valid UTF-8") from None
    if len(raw) > 255:
        raise InvalidArgument(f"{what} is longer than 255 bytes")
    return _B.pack(len(raw)) + raw


def check_part(p: Any) -> None:
    """Raise InvalidArgument unless ``p`` is a PartRef with well-typed fields."""
    if not isinstance(p, PartRef):
        raise InvalidArgument("a part must be a PartRef")
    if isinstance(p.number, bool) or not isinstance(p.number, int) or not 1 <= p.number <= MAX_PARTS:
        raise InvalidArgument(f"invalid part number {p.number!r}")
    if isinstance(p.size, bool) or not isinstance(p.size, int) or not 0 <= p.size < 2**63:
        raise InvalidArgument(f"invalid part size {p.size!r}")
    if not isinstance(p.etag, str) or not _MD5_RE.match(p.etag):
        raise InvalidArgument(f"invalid part etag {p.etag!r}")
    if not isinstance(p.version_id, str) or not p.version_id or len(p.version_id.encode(errors="replace")) > 0xFFFF:
        raise InvalidArgument("invalid part version id")
    if not isinstance(p.placement, tuple) or len(p.placement) > 255:
        raise InvalidArgument("invalid part placement")
    for node in p.placement:
        _short(node, "node id")
    if not isinstance(p.checksums, dict) or len(p.checksums) > 255:
        raise InvalidArgument("invalid part checksums")
    for k, v in p.checksums.items():
        _short(k, "checksum name")
        _short(v, "checksum value")


class _Table:
    def __init__(self) -> None:
        self.ids: dict[Any, int] = {}

    def id_of(self, value: Any) -> int:
        return self.ids.setdefault(value, len(self.ids))


def pack(parts: tuple[PartRef, ...]) -> str:
    """The compact text of ``parts``; raises InvalidArgument for an invalid part."""
    if len(parts) > MAX_PARTS:
        raise InvalidArgument(f"more than {MAX_PARTS} parts")
    suffixes, placements = _Table(), _Table()
    body: list[bytes] = []
    for p in parts:
        check_part(p)
        out = [_PART.pack(p.number, p.size, bytes.fromhex(p.etag))]
        m = _HLC_RE.match(p.version_id)
        if m and len(m.group(2).encode()) <= 255:
            out.append(_H.pack(suffixes.id_of(m.group(2))) + bytes.fromhex(m.group(1)))
        else:
            raw = p.version_id.encode()
            out.append(_H.pack(RAW_VID) + _H.pack(len(raw)) + raw)
        out.append(_H.pack(placements.id_of(p.placement)))
        out.append(_B.pack(len(p.checksums)))
        for k, v in p.checksums.items():
            out.append(_short(k, "checksum name") + _short(v, "checksum value"))
        body.append(b"".join(out))
    if len(suffixes.ids) >= RAW_VID or len(placements.ids) > 0xFFFF:
        raise InvalidArgument("too many distinct version id suffixes or placements")
    head = [_B.pack(FORMAT), _H.pack(len(parts)), _H.pack(len(suffixes.ids))]
    head += [_short(s, "version id suffix") for s in suffixes.ids]
    head.append(_H.pack(len(placements.ids)))
    for pl in placements.ids:
        head.append(_B.pack(len(pl)) + b"".join(_short(n, "node id") for n in pl))
    return base64.b64encode(b"".join(head + body)).decode("ascii")


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, s: struct.Struct) -> tuple:
        v = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return v

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError("truncated")
        v = self.buf[self.pos : self.pos + n]
        self.pos += n
        return v

    def short(self) -> str:
        (n,) = self.take(_B)
        return self.raw(n).decode()


def unpack(text: str) -> tuple[PartRef, ...]:
    """The parts encoded by :func:`pack`; raises ValueError for text it did not produce."""
    try:
        r = _Reader(base64.b64decode(text, validate=True))
        (fmt,) = r.take(_B)
        if fmt != FORMAT:
            raise ValueError(f"unknown parts format {fmt}")
        (count,) = r.take(_H)
        (ns,) = r.take(_H)
        suffixes = [r.short() for _ in range(ns)]
        (np,) = r.take(_H)
        placements = []
        for _ in range(np):
            (k,) = r.take(_B)
            placements.append(tuple(r.short() for _ in range(k)))
        parts = []
        for _ in range(count):
            number, size, etag = r.take(_PART)
            (sfx,) = r.take(_H)
            if sfx == RAW_VID:
                (n,) = r.take(_H)
                vid = r.raw(n).decode()
            else:
                vid = f"{r.raw(8).hex()}-{suffixes[sfx]}"
            (pl,) = r.take(_H)
            (nc,) = r.take(_B)
            checksums = {}
            for _ in range(nc):
                k = r.short()
                checksums[k] = r.short()
            parts.append(PartRef(number, vid, size, etag.hex(), placements[pl], checksums))
    except (struct.error, IndexError, UnicodeDecodeError, binascii.Error) as exc:
        raise ValueError(f"malformed parts list: {exc}") from None
    return tuple(parts)

"""The on-disk format of one blob record: pure encoding, decoding and block arithmetic.

A record is self-describing, so a node's index can be rebuilt and its data scrubbed from
the files alone. Layout (format version 1, integers little-endian)::

    header  magic "OBJB" | version u16 | kind u8 | 0 u8 | body_len u32 | body | xxh64 u64
            body = shard u16 | size u64 | block_size u32 | created_us u64
                   | version_id | policy | bucket | key        (each: len u16 + UTF-8)
    blocks  for i in 0..n-1: data_i (block_size bytes, the last one shorter) | xxh64(data_i, seed=i)
    footer  magic "OBJE" | seq u64 | size u64 | data_xxh u64 | header_xxh u64 | xxh64 u64

Invariants:
- The header checksum covers every header byte before it; the footer repeats the header
  checksum and the size and checksums itself, so a footer only validates the header it was
  written for. A record without a valid footer is incomplete and is never served.
- Every block is verified before any of its bytes leave the node (:func:`verify_block`).
- ``seq`` is assigned when the record is committed; for one blob id the record with the
  highest ``seq`` wins (a later PUT replaces, a tombstone deletes).
- Bucket and key live only in the header, never in a file name; version ids are limited
  to ``[0-9A-Za-z._-]`` (:func:`validate_version_id`).
"""
from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass
from typing import Sequence

from objstore.checksum import StreamHasher, block_checksum, pack_u64, unpack_u64, xxh64
from objstore.errors import CorruptBlob, InvalidArgument, KeyTooLongError
from objstore.formats import check_version

MAGIC = b"OBJB"
FOOTER_MAGIC = b"OBJE"
FORMAT_VERSION = 1
KIND_BLOB = 1
KIND_TOMBSTONE = 2
DEFAULT_BLOCK_SIZE = 64 * 1024
MAX_BLOCK_SIZE = 16 * 1024 * 1024
MAX_KEY_BYTES = 1024
MAX_BUCKET_BYTES = 255
MAX_POLICY_BYTES = 64
MAX_VERSION_ID = 128
MAX_SHARD = 0xFFFF
CHECKSUM_SIZE = 8

_FIXED = struct.Struct("<4sHBBI")  # magic, version, kind, reserved, body_len
_BODY = struct.Struct("<HQIQ")  # shard, size, block_size, created_us
_FOOTER = struct.Struct("<4sQQQQ")  # magic, seq, size, data_xxh, header_xxh
_U64_STRUCT = struct.Struct("<Q")  # a block checksum
FIXED_SIZE = _FIXED.size
FOOTER_SIZE = _FOOTER.size + CHECKSUM_SIZE
MAX_HEADER_SIZE = FIXED_SIZE + _BODY.size + 4 * 2 + MAX_VERSION_ID + MAX_POLICY_BYTES + MAX_BUCKET_BYTES + MAX_KEY_BYTES + CHECKSUM_SIZE

_VERSION_ID_RE = re.compile(r"[0-9A-Za-z._-]{1,%d}" % MAX_VERSION_ID)


def validate_version_id(version_id: str) -> str:
    """Return ``version_id`` if it is safe to store; raises InvalidArgument otherwise."""
    if not isinstance(version_id, str) or not _VERSION_ID_RE.fullmatch(version_id):
        raise InvalidArgument(f"invalid version id {version_id!r}: use 1-{MAX_VERSION_ID} of [0-9A-Za-z._-]")
    return version_id


@dataclass(frozen=True, slots=True, order=True)
class BlobId:
    """The identity of a blob on a node: one shard (or replica, shard 0) of one version."""

    version_id: str
    shard: int

    def __post_init__(self) -> None:
        validate_version_id(self.version_id)
        if not isinstance(self.shard, int) or not 0 <= self.shard <= MAX_SHARD:
            raise InvalidArgument(f"invalid shard {self.shard!r}")

    @classmethod
    def parse(cls, version_id: str, shard: str) -> "BlobId":
        """Build from URL path parts; raises InvalidArgument on anything malformed."""
        # ASCII digits only: str.isdigit() also takes '²' (which int() refuses) and int()
        # takes other scripts' digits ('٣' is 3), which would name shard 3 a second way.
        if not (shard.isascii() and shard.isdigit()) or len(shard) > 5:
            raise InvalidArgument(f"invalid shard {shard!r}")
        return cls(version_id, int(shard))


@dataclass(frozen=True, slots=True)
class BlobHeader:
    """What a record says about itself. ``created`` is unix seconds (microsecond precision)."""

    kind: int
    version_id: str
    shard: int
    bucket: str
    key: str
    policy: str
    size: int
    block_size: int
    created: float

    @property
    def blob_id(self) -> BlobId:
        return BlobId(self.version_id, self.shard)

    @property
    def n_blocks(self) -> int:
        return n_blocks(self.size, self.block_size)

    @property
    def stored_data_size(self) -> int:
        """Bytes the blocks take on disk: the data plus one checksum per block."""
        return self.size + CHECKSUM_SIZE * self.n_blocks

    def encode(self) -> bytes:
        """The header bytes, checksum included; raises InvalidArgument/KeyTooLongError."""
        validate_version_id(self.version_id)
        if self.kind not in (KIND_BLOB, KIND_TOMBSTONE):
            raise InvalidArgument(f"invalid record kind {self.kind}")
        if not 0 <= self.shard <= MAX_SHARD:
            raise InvalidArgument(f"invalid shard {self.shard}")
        if not 0 < self.block_size <= MAX_BLOCK_SIZE or self.size < 0:
            raise InvalidArgument("invalid size or block size")
        key = self.key.encode("utf-8")
        if len(key) > MAX_KEY_BYTES:
            raise KeyTooLongError()
        bucket = _bounded(self.bucket, MAX_BUCKET_BYTES, "bucket")
        policy = _bounded(self.policy, MAX_POLICY_BYTES, "policy")
        body = b"".join(
            [
                _BODY.pack(self.shard, self.size, self.block_size, round(self.created * 1_000_000)),
                _string(self.version_id.encode("ascii")),
                _string(policy),
                _string(bucket),
                _string(key),
            ]
        )
        head = _FIXED.pack(MAGIC, FORMAT_VERSION, self.kind, 0, len(body)) + body
        return head + pack_u64(xxh64(head))


def _bounded(text: str, limit: int, what: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > limit:
        raise InvalidArgument(f"{what} longer than {limit} bytes")
    return raw


def _string(raw: bytes) -> bytes:
    return struct.pack("<H", len(raw)) + raw


def header_length(fixed: bytes | memoryview) -> int:
    """Total header length from its first FIXED_SIZE bytes; raises CorruptBlob if not a header."""
    if len(fixed) < FIXED_SIZE:
        raise CorruptBlob("truncated record header")
    magic, version, _kind, _reserved, body_len = _FIXED.unpack_from(fixed, 0)
    if magic != MAGIC:
        raise CorruptBlob("bad record magic")
    if version != FORMAT_VERSION:
        raise CorruptBlob(f"unsupported record format version {version}")
    total = FIXED_SIZE + body_len + CHECKSUM_SIZE
    if total > MAX_HEADER_SIZE:
        raise CorruptBlob("record header too long")
    return total


def _refuse_newer(buf: bytes | memoryview) -> None:
    if len(buf) < FIXED_SIZE:
        return
    magic, version, _kind, _reserved, body_len = _FIXED.unpack_from(buf, 0)
    total = FIXED_SIZE + body_len + CHECKSUM_SIZE
    if magic == MAGIC and version > FORMAT_VERSION and total <= len(buf):
        if xxh64(memoryview(buf)[: total - CHECKSUM_SIZE]) == unpack_u64(buf, total - CHECKSUM_SIZE):
            check_version("a blob record", version, FORMAT_VERSION)


def decode_header(buf: bytes | memoryview) -> tuple[BlobHeader, int, int]:
    """Parse and verify a header at the start of ``buf``.

    Returns ``(header, header_length, header_checksum)``; raises CorruptBlob when the magic,
    version, checksum or any field is wrong, or ``buf`` is shorter than the header; raises
    FormatTooNew for a newer version's header whose checksum verifies (every version keeps
    the fixed part and ends its header with this checksum), so a newer record is refused,
    never taken for damage, while a flipped version byte is still damage.
    """
    _refuse_newer(buf)
    total = header_length(buf)
    if len(buf) < total:
        raise CorruptBlob("truncated record header")
    want = unpack_u64(buf, total - CHECKSUM_SIZE)
    if xxh64(memoryview(buf)[: total - CHECKSUM_SIZE]) != want:
        raise CorruptBlob("record header checksum mismatch")
    _magic, _version, kind, _reserved, _body_len = _FIXED.unpack_from(buf, 0)
    try:
        shard, size, block_size, created_us = _BODY.unpack_from(buf, FIXED_SIZE)
        pos = FIXED_SIZE + _BODY.size
        strings = []
        for _ in range(4):
            (n,) = struct.unpack_from("<H", buf, pos)
            pos += 2
            strings.append(bytes(buf[pos : pos + n]).decode("utf-8"))
            pos += n
        if pos != total - CHECKSUM_SIZE:
            raise ValueError("header body length mismatch")
        header = BlobHeader(kind, strings[0], shard, strings[2], strings[3], strings[1], size, block_size, created_us / 1_000_000)
        if kind not in (KIND_BLOB, KIND_TOMBSTONE) or not 0 < block_size <= MAX_BLOCK_SIZE:
            raise ValueError("bad kind or block size")
        validate_version_id(header.version_id)
    except (struct.error, ValueError, InvalidArgument) as exc:
        raise CorruptBlob(f"malformed record header: {exc}") from None
    return header, total, want


_MAGIC_AND_VERSION = _FIXED.pack(MAGIC, FORMAT_VERSION, 0, 0, 0)[:6]
_U16 = struct.Struct("<H")
_VERSION_ID_AT = FIXED_SIZE + _BODY.size  # the version id's length (u16), then its bytes


def header_matches(raw: bytes | bytearray | memoryview, header_xxh: int, version_id: str, shard: int) -> bool:
    """Whether ``raw`` is exactly one header of this format version whose checksum, stored
    and computed, is ``header_xxh`` and which names the blob ``version_id``/``shard``.

    What a read checks against its index entry (which holds the decoded fields already):
    the checks of :func:`decode_header` that bear on it and the blob id compared, without
    decoding the fields (the checksum covers them)."""
    n = len(raw)
    vid = version_id.encode("ascii")
    at = _VERSION_ID_AT + 2
    return (n >= at + len(vid) + CHECKSUM_SIZE and raw[:6] == _MAGIC_AND_VERSION
            and FIXED_SIZE + _FIXED.unpack_from(raw, 0)[4] + CHECKSUM_SIZE == n
            and unpack_u64(raw, n - CHECKSUM_SIZE) == header_xxh
            and xxh64(memoryview(raw)[:n - CHECKSUM_SIZE]) == header_xxh
            and _U16.unpack_from(raw, FIXED_SIZE)[0] == shard
            and _U16.unpack_from(raw, _VERSION_ID_AT)[0] == len(vid) and raw[at:at + len(vid)] == vid)


@dataclass(frozen=True, slots=True)
class Footer:
    """The commit mark of a record."""

    seq: int
    size: int
    data_xxh: int
    header_xxh: int

    def encode(self) -> bytes:
        head = _FOOTER.pack(FOOTER_MAGIC, self.seq, self.size, self.data_xxh, self.header_xxh)
        return head + pack_u64(xxh64(head))


def decode_footer(buf: bytes | memoryview, header_xxh: int, size: int) -> Footer:
    """Parse a footer and check it belongs to the header with checksum ``header_xxh``.

    Raises CorruptBlob when it is truncated, damaged or written for another record.
    """
    if len(buf) < FOOTER_SIZE:
        raise CorruptBlob("truncated record footer")
    magic, seq, fsize, data_xxh, hxxh = _FOOTER.unpack_from(buf, 0)
    if magic != FOOTER_MAGIC or xxh64(memoryview(buf)[: _FOOTER.size]) != unpack_u64(buf, _FOOTER.size):
        raise CorruptBlob("bad record footer")
    if hxxh != header_xxh or fsize != size:
        raise CorruptBlob("record footer does not match its header")
    return Footer(seq, fsize, data_xxh, hxxh)


# --- block arithmetic ----------------------------------------------------------------------


def n_blocks(size: int, block_size: int) -> int:
    return -(-size // block_size)


def record_length(header_len: int, size: int, block_size: int) -> int:
    """Bytes of a whole record: header, blocks with checksums, footer."""
    return header_len + size + CHECKSUM_SIZE * n_blocks(size, block_size) + FOOTER_SIZE


def block_span(size: int, block_size: int, index: int) -> tuple[int, int]:
    """(offset from the first block, stored length incl. checksum) of block ``index``."""
    data_len = min(block_size, size - index * block_size)
    return index * (block_size + CHECKSUM_SIZE), data_len + CHECKSUM_SIZE


def blocks_for_range(size: int, block_size: int, start: int, end: int) -> range:
    """The block indexes holding data bytes ``start..end`` (inclusive)."""
    if not 0 <= start <= end < size:
        raise InvalidArgument(f"range {start}-{end} outside blob of {size} bytes")
    return range(start // block_size, end // block_size + 1)


def verify_block(stored: bytes | memoryview, index: int) -> memoryview:
    """The data of a stored block (data + checksum) after verification; raises CorruptBlob."""
    view = memoryview(stored)
    if len(view) <= CHECKSUM_SIZE:
        raise CorruptBlob(f"block {index} truncated")
    data = view[:-CHECKSUM_SIZE]
    check_block(data, unpack_u64(view, len(view) - CHECKSUM_SIZE), index)
    return data


def check_block(data: bytes | memoryview, stored: int, index: int) -> None:
    """Raise CorruptBlob unless ``data`` (block ``index``'s data) has the checksum ``stored``."""
    if block_checksum(data, index) != stored:
        raise CorruptBlob(f"block {index} checksum mismatch")


class _DataHashed:
    """The whole-data size and xxh64 of what a block writer was fed (``_hasher``)."""

    _hasher: StreamHasher

    @property
    def size(self) -> int:
        return self._hasher.size

    @property
    def data_xxh(self) -> int:
        return self._hasher.intdigest()


class BlockEncoder(_DataHashed):
    """Cuts a stream of chunks into checksummed blocks.

    ``feed`` returns the encoded bytes of every block completed so far; ``finish`` returns
    the last, partial block. ``data_xxh`` and ``size`` describe all data fed.
    """

    def __init__(self, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        self.block_size = block_size
        self._pending = bytearray()
        self._index = 0
        self._hasher = StreamHasher()

    def feed(self, chunk: bytes | bytearray | memoryview) -> bytes:
        self._hasher.update(chunk)
        self._pending += chunk
        bs = self.block_size
        if len(self._pending) < bs:
            return b""
        out = []
        view = memoryview(self._pending)
        pos = 0
        while len(view) - pos >= bs:
            block = view[pos : pos + bs]
            out.append(bytes(block))
            out.append(pack_u64(block_checksum(block, self._index)))
            self._index += 1
            pos += bs
        rest = bytes(view[pos:])
        view.release()
        self._pending = bytearray(rest)
        return b"".join(out)

    def finish(self) -> bytes:
        if not self._pending:
            return b""
        block = bytes(self._pending)
        self._pending = bytearray()
        out = block + pack_u64(block_checksum(block, self._index))
        self._index += 1
        return out


def encode_blocks(data: bytes, block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[bytes, int]:
    """All blocks of ``data`` and its whole-data xxh64."""
    enc = BlockEncoder(block_size)
    return enc.feed(data) + enc.finish(), enc.data_xxh


class BlockFramer(_DataHashed):
    """Lays a stream of chunks out as stored blocks (``data | xxh64(data, seed=index)``)
    directly in one of two reusable buffers of ``blocks_per_buffer`` whole blocks each:
    every body byte is copied once, into the place it takes on disk, and the buffers are
    never reallocated (large blobs; ``BlockEncoder`` joins fresh bytes per block).

    ``feed(view)`` copies as much of ``view`` as fits and returns how many bytes it took;
    when ``full``, ``take()`` hands out the laid-out buffer and switches to the other one.
    The caller must be done with a taken buffer before the next ``take()`` (the framer
    then fills it again). ``finish()`` closes the partial last block and returns the
    rest. ``size`` and ``data_xxh`` describe all data fed.

    ``prefix`` (the record header) is laid out before the first block. With ``align``,
    every buffer ``take()`` hands out is a whole number of ``align`` bytes, starting at a
    page-aligned address (the buffers are anonymous memory maps): what would not fill the
    last ``align`` bytes is carried to the start of the other buffer, so the file can be
    written with ``O_DIRECT``; only ``finish()`` returns an unaligned rest.

    ``buffers``: two memory maps of at least ``framer_capacity(...)`` bytes to lay out in
    (reused ones: a fresh map costs its page faults again); new ones when None. Their
    contents need not be zero. ``buffers()`` returns them once the framer is done.
    """

    def __init__(self, block_size: int = DEFAULT_BLOCK_SIZE, blocks_per_buffer: int = 16, *,
                 prefix: bytes = b"", align: int = 0, buffers: Sequence[mmap.mmap] | None = None) -> None:
        self.block_size = block_size
        self._frame = block_size + CHECKSUM_SIZE
        self._framed = self._frame * blocks_per_buffer  # block bytes a full buffer holds
        self._align = align
        capacity = framer_capacity(block_size, blocks_per_buffer, len(prefix), align)
        if buffers is not None and (len(buffers) != 2 or min(len(b) for b in buffers) < capacity):
            raise ValueError(f"a framer needs two buffers of {capacity} bytes")
        self._buffers = list(buffers) if buffers is not None else [mmap.mmap(-1, capacity) for _ in range(2)]
        self._buf = memoryview(self._buffers[0])
        self._other = memoryview(self._buffers[1])
        self._buf[:len(prefix)] = prefix
        self._start = len(prefix)  # carried (or prefix) bytes at the start of the buffer
        self._fill = len(prefix)  # bytes of the buffer laid out, checksums included
        self._in_block = 0  # data bytes of the block being filled
        self._index = 0
        self._hasher = StreamHasher()

    @property
    def full(self) -> bool:
        return self._fill - self._start == self._framed

    def feed(self, view: memoryview) -> int:
        """Copy a prefix of ``view`` into the buffer (up to its end); returns its length."""
        taken = 0
        bs = self.block_size
        while taken < len(view) and not self.full:
            n = min(bs - self._in_block, len(view) - taken)
            self._buf[self._fill:self._fill + n] = view[taken:taken + n]
            self._fill += n
            self._in_block += n
            taken += n
            if self._in_block == bs:
                self._close_block()
        if taken:
            self._hasher.update(view[:taken])
        return taken

    def _close_block(self) -> None:
        start = self._fill - self._in_block
        _U64_STRUCT.pack_into(self._buf, self._fill, block_checksum(self._buf[start:self._fill], self._index))
        self._fill += CHECKSUM_SIZE
        self._index += 1
        self._in_block = 0

    def take(self) -> memoryview:
        """The laid-out bytes of the current buffer (a whole number of ``align`` bytes); the
        framer goes on in the other one, after the bytes carried over."""
        end = self._fill - self._fill % self._align if self._align else self._fill
        carry = self._fill - end
        out = self._buf[:end]
        self._other[:carry] = self._buf[end:self._fill]
        self._buf, self._other = self._other, self._buf
        self._start = self._fill = carry
        return out

    def finish(self) -> memoryview:
        """Close the partial last block (if any) and return all that is left (unaligned)."""
        if self._in_block:
            self._close_block()
        out = self._buf[:self._fill]
        self._buf, self._other = self._other, self._buf
        self._start = self._fill = 0
        return out

    def buffers(self) -> list[mmap.mmap]:
        """The two memory maps, for another framer once no view this one handed out is in use."""
        return self._buffers


def framer_capacity(block_size: int, blocks_per_buffer: int, prefix_len: int, align: int = 0) -> int:
    """Bytes each buffer of a ``BlockFramer`` needs: whole frames plus room for the prefix
    (or the bytes carried to the next aligned edge)."""
    return (block_size + CHECKSUM_SIZE) * blocks_per_buffer + max(align, prefix_len)

"""Data checksums: xxh64 for blocks, records and whole blobs.

Invariants:
- Every checksum here is xxh64 (64 bits), little-endian when packed on disk, lower-case
  16-digit hex when shown on the wire.
- A block checksum is seeded with the block's index inside its blob, so a block that is
  intact but sits at the wrong position (a misdirected write, a copy from another blob)
  fails verification just like a flipped bit.
"""
from __future__ import annotations

import struct

import xxhash

_U64 = struct.Struct("<Q")


def xxh64(data: bytes | bytearray | memoryview, seed: int = 0) -> int:
    """The xxh64 of ``data`` as an unsigned 64-bit integer."""
    return xxhash.xxh64_intdigest(data, seed)


def xxh64_hex(data: bytes | bytearray | memoryview, seed: int = 0) -> str:
    """The xxh64 of ``data`` as 16 lower-case hex digits."""
    return xxhash.xxh64_hexdigest(data, seed)


def block_checksum(data: bytes | bytearray | memoryview, index: int) -> int:
    """The checksum of block number ``index`` of a blob."""
    return xxhash.xxh64_intdigest(data, index)


def pack_u64(value: int) -> bytes:
    return _U64.pack(value)


def unpack_u64(raw: bytes | memoryview, offset: int = 0) -> int:
    return _U64.unpack_from(raw, offset)[0]


def hex64(value: int) -> str:
    """Format a 64-bit checksum the way the wire shows it."""
    return f"{value:016x}"


class StreamHasher:
    """Incremental xxh64 over a stream of chunks (the whole-blob checksum)."""

    __slots__ = ("_h", "size")

    def __init__(self, seed: int = 0) -> None:
        self._h = xxhash.xxh64(seed=seed)
        self.size = 0

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        self._h.update(chunk)
        self.size += len(chunk)

    def intdigest(self) -> int:
        return self._h.intdigest()

    def hexdigest(self) -> str:
        return self._h.hexdigest()

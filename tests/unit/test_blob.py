"""The blob record format: headers, blocks, footers, checksums, ranges, version ids."""
from __future__ import annotations

import ctypes
import mmap
import os
import random
import struct
from typing import Callable

import pytest

from objstore.checksum import block_checksum, pack_u64, unpack_u64
from objstore.errors import CorruptBlob, InvalidArgument, KeyTooLongError
from objstore.node.blob import (
    FOOTER_SIZE,
    FORMAT_VERSION,
    KIND_BLOB,
    KIND_TOMBSTONE,
    BlobHeader,
    BlobId,
    BlockEncoder,
    BlockFramer,
    Footer,
    block_span,
    blocks_for_range,
    decode_footer,
    decode_header,
    encode_blocks,
    framer_capacity,
    record_length,
    validate_version_id,
    verify_block,
)


def header(size: int = 100, block_size: int = 16, key: str = "a/ü/../key", kind: int = KIND_BLOB) -> BlobHeader:
    return BlobHeader(kind, "0000018c2f3a1b2c-000042-gw1", 3, "bucket", key, "ec:4+2", size, block_size, 1700000000.123456)


def encode_record(h: BlobHeader, data: bytes, seq: int = 7) -> bytes:
    hb = h.encode()
    blocks, dxxh = encode_blocks(data, h.block_size)
    return hb + blocks + Footer(seq, len(data), dxxh, unpack_u64(hb, len(hb) - 8)).encode()


def read_range(record: bytes, start: int, end: int) -> bytes:
    """Decode a record and return bytes start..end via the block arithmetic, verifying blocks."""
    h, hlen, _ = decode_header(record)
    out = b""
    for i in blocks_for_range(h.size, h.block_size, start, end):
        off, ln = block_span(h.size, h.block_size, i)
        data = bytes(verify_block(record[hlen + off : hlen + off + ln], i))
        out += data[max(start - i * h.block_size, 0) : end - i * h.block_size + 1]
    return out


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 100, 1000])
def test_record_round_trip(size: int) -> None:
    data = os.urandom(size)
    h = header(size)
    rec = encode_record(h, data)
    assert len(rec) == record_length(len(h.encode()), size, h.block_size)
    got, hlen, hxxh = decode_header(rec)
    assert got == h
    assert got.created == pytest.approx(1700000000.123456, abs=1e-6)
    footer = decode_footer(rec[-FOOTER_SIZE:], hxxh, size)
    assert footer.seq == 7 and footer.size == size
    if size:
        assert read_range(rec, 0, size - 1) == data


def test_tombstone_header_round_trip() -> None:
    h = header(0, key="k", kind=KIND_TOMBSTONE)
    assert decode_header(h.encode())[0] == h


def test_range_reads_across_block_boundaries() -> None:
    data = bytes(range(256)) * 2  # 512 bytes, 32 blocks of 16
    rec = encode_record(header(len(data)), data)
    for start in range(0, len(data), 7):
        for end in (start, start + 1, start + 15, start + 16, start + 17, start + 40, len(data) - 1):
            end = min(end, len(data) - 1)
            assert read_range(rec, start, end) == data[start : end + 1], (start, end)


def test_range_outside_blob_rejected() -> None:
    with pytest.raises(InvalidArgument):
        blocks_for_range(100, 16, 50, 100)
    with pytest.raises(InvalidArgument):
        blocks_for_range(100, 16, 20, 10)


def test_flipped_bit_in_any_block_byte_is_caught() -> None:
    data = os.urandom(40)
    blocks, _ = encode_blocks(data, 16)
    stored = blocks[:24]  # block 0: 16 data bytes + 8 checksum bytes
    for byte in range(len(stored)):
        for bit in (0, 3, 7):
            bad = bytearray(stored)
            bad[byte] ^= 1 << bit
            with pytest.raises(CorruptBlob):
                verify_block(bytes(bad), 0)
    assert bytes(verify_block(stored, 0)) == data[:16]


def test_block_at_wrong_position_is_caught() -> None:
    data = b"x" * 32
    blocks, _ = encode_blocks(data, 16)
    block1 = blocks[24:48]
    assert bytes(verify_block(block1, 1)) == b"x" * 16
    with pytest.raises(CorruptBlob):
        verify_block(block1, 0)  # identical bytes, but it is not block 0


def test_header_rejects_wrong_magic_version_checksum_and_truncation() -> None:
    raw = header().encode()
    with pytest.raises(CorruptBlob, match="magic"):
        decode_header(b"XXXX" + raw[4:])
    bumped = raw[:4] + struct.pack("<H", FORMAT_VERSION + 1) + raw[6:]
    with pytest.raises(CorruptBlob, match="version"):
        decode_header(bumped)
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x10
        with pytest.raises(CorruptBlob):
            decode_header(bytes(bad))
    for n in range(len(raw)):
        with pytest.raises(CorruptBlob):
            decode_header(raw[:n])


def test_footer_only_validates_its_own_header() -> None:
    data = b"hello world"
    rec = encode_record(header(len(data)), data)
    _, _, hxxh = decode_header(rec)
    footer = rec[-FOOTER_SIZE:]
    assert decode_footer(footer, hxxh, len(data)).seq == 7
    with pytest.raises(CorruptBlob):
        decode_footer(footer, hxxh ^ 1, len(data))
    with pytest.raises(CorruptBlob):
        decode_footer(footer, hxxh, len(data) + 1)
    for i in range(FOOTER_SIZE):
        bad = bytearray(footer)
        bad[i] ^= 0x01
        with pytest.raises(CorruptBlob):
            decode_footer(bytes(bad), hxxh, len(data))


def test_streaming_encoder_matches_one_shot() -> None:
    rng = random.Random(5)
    data = rng.randbytes(10_000)
    want, want_xxh = encode_blocks(data, 1000)
    enc = BlockEncoder(1000)
    out = b""
    pos = 0
    while pos < len(data):
        n = rng.randint(1, 2500)
        out += enc.feed(data[pos : pos + n])
        pos += n
    out += enc.finish()
    assert out == want and enc.data_xxh == want_xxh and enc.size == len(data)
    assert unpack_u64(want, 1000) == block_checksum(data[:1000], 0)
    assert want[1000:1008] == pack_u64(block_checksum(data[:1000], 0))


def frame_in_random_pieces(framer: BlockFramer, data: bytes, rng: random.Random,
                           check: Callable[[memoryview], None]) -> bytes:
    """Feed ``data`` to ``framer`` in random pieces of 1–2500 bytes; every buffer taken is
    passed to ``check`` and copied out before the next take reuses it; then the rest."""
    out = b""
    pos = 0
    while pos < len(data):
        n = rng.randint(1, 2500)
        view, done = memoryview(data[pos : pos + n]), 0
        while done < len(view):
            done += framer.feed(view[done:])
            if framer.full:
                taken = framer.take()
                check(taken)
                out += bytes(taken)
        pos += n
    return out + bytes(framer.finish())


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 2999, 3000, 3001, 10_000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_block_framer_lays_out_what_the_one_shot_encoder_does(size: int, seed: int) -> None:
    """Any chunking, buffers of 3 blocks reused: the bytes taken, in order, are the blocks."""
    rng = random.Random(seed)
    data = rng.randbytes(size)
    want, want_xxh = encode_blocks(data, 1000)
    framer = BlockFramer(1000, 3)
    out = frame_in_random_pieces(framer, data, rng, lambda taken: None)
    assert out == want and framer.data_xxh == want_xxh and framer.size == len(data)


@pytest.mark.parametrize("size", [0, 1, 2999, 3000, 3001, 20_000])
@pytest.mark.parametrize("seed", [1, 2])
def test_block_framer_with_a_prefix_hands_out_aligned_buffers(size: int, seed: int) -> None:
    """With a header prefix and ``align``, every buffer taken is whole ``align`` bytes at a
    page-aligned address, and all bytes taken, in order, are the prefix then the blocks."""
    rng = random.Random(seed)
    data, prefix = rng.randbytes(size), rng.randbytes(rng.randint(1, 900))
    want, want_xxh = encode_blocks(data, 1000)
    framer = BlockFramer(1000, 3, prefix=prefix, align=512)

    def aligned(taken: memoryview) -> None:
        assert len(taken) % 512 == 0
        assert ctypes.addressof(ctypes.c_char.from_buffer(taken)) % mmap.PAGESIZE == 0

    out = frame_in_random_pieces(framer, data, rng, aligned)
    assert out == prefix + want and framer.data_xxh == want_xxh and framer.size == len(data)


@pytest.mark.parametrize("seed", [1, 2])
def test_block_framer_in_reused_buffers_lays_out_the_same_bytes(seed: int) -> None:
    """Buffers handed in that still hold another blob's bytes (a reused pair) change nothing:
    every byte taken is written by this framer; buffers too small are refused."""
    rng = random.Random(seed)
    data, prefix = rng.randbytes(20_000), rng.randbytes(300)
    want, want_xxh = encode_blocks(data, 1000)
    need = framer_capacity(1000, 3, len(prefix), 512)
    dirty = [mmap.mmap(-1, need + 100) for _ in range(2)]
    for b in dirty:
        b.write(b"\xaa" * len(b))
    framer = BlockFramer(1000, 3, prefix=prefix, align=512, buffers=dirty)
    out = frame_in_random_pieces(framer, data, rng, lambda taken: None)
    assert out == prefix + want and framer.data_xxh == want_xxh
    assert framer.buffers() == dirty
    with pytest.raises(ValueError):
        BlockFramer(1000, 3, prefix=prefix, align=512, buffers=[mmap.mmap(-1, need - 1), mmap.mmap(-1, need)])


def test_keys_are_arbitrary_utf8_up_to_1024_bytes() -> None:
    for key in ("../../etc/passwd", "/abs/path", "a\x00b", "é" * 512, "../" * 341):
        h = header(key=key)
        assert decode_header(h.encode())[0].key == key
    with pytest.raises(KeyTooLongError):
        header(key="k" * 1025).encode()


def test_version_ids_are_validated() -> None:
    assert validate_version_id("0000018c2f3a1b2c-000042-gw1") == "0000018c2f3a1b2c-000042-gw1"
    for bad in ("", "a/b", "../x", "a b", "é", "x" * 129, "a\\b", "a\x00"):
        with pytest.raises(InvalidArgument):
            validate_version_id(bad)
        with pytest.raises(InvalidArgument):
            BlobId(bad, 0)
    with pytest.raises(InvalidArgument):
        BlobId("v", 70000)
    for bad in ("-1", "\u00b2", "\u0663", "\uff13", "1\u00b9", "+1", "1_0", " 1", "123456"):
        with pytest.raises(InvalidArgument):
            BlobId.parse("v", bad)
    assert BlobId.parse("v", "12") == BlobId("v", 12)


def test_header_matches_only_the_exact_header_of_its_blob() -> None:
    from objstore.node.blob import header_matches

    raw = BlobHeader(KIND_BLOB, "v-1", 3, "b", "k/x", "replica:3", 10, 64, 1.0).encode()
    _, _, hxxh = decode_header(raw)
    assert header_matches(raw, hxxh, "v-1", 3)
    assert header_matches(memoryview(bytearray(raw)), hxxh, "v-1", 3)
    assert not header_matches(raw, hxxh, "v-1", 2)
    assert not header_matches(raw, hxxh, "v-2", 3)
    assert not header_matches(raw, hxxh, "v-", 3)
    assert not header_matches(raw, hxxh ^ 1, "v-1", 3)
    assert not header_matches(raw[:-1], hxxh, "v-1", 3)
    assert not header_matches(raw + b"\0", hxxh, "v-1", 3)
    for i in range(len(raw)):  # any flipped bit, in any field or the checksum
        for bit in (0x01, 0x80):
            flipped = bytearray(raw)
            flipped[i] ^= bit
            assert not header_matches(flipped, hxxh, "v-1", 3), (i, bit)

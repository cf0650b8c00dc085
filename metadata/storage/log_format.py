"""On-disk format of the durable log's segment files, and their recovery scan. Pure: bytes in, facts out.

A segment file is ``seg-<first index, 20 digits>.log``:

    header:  magic b"OSMLOG01" | first_index u64
    records: length u32 | term u64 | index u64 | checksum u64 | payload (length bytes)

all little endian. ``checksum`` is xxhash64 over ``length | term | index | payload``, so a
flipped bit anywhere in a record, header fields included, is caught. Indexes within and
across segments are consecutive.

Recovery (:func:`scan_segment`): records are read in order until the first one that is
incomplete, fails its checksum or breaks the index sequence. If no valid record follows
that point it is a torn tail (a write cut short by a crash, never acknowledged) and the
caller truncates it; if a valid record does follow, acknowledged data in the middle is
damaged and :class:`CorruptLogError` is raised rather than replaying around the hole.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import xxhash

from objstore.formats import check_version, numbered_magic_version

MAGIC = b"OSMLOG01"
SEGMENT_HEADER = struct.Struct("<8sQ")
RECORD_HEADER = struct.Struct("<IQQQ")
_SUM_FIELDS = struct.Struct("<IQQ")  # the header fields the checksum covers
_INDEX = struct.Struct("<Q")
MAX_PAYLOAD = 64 * 1024 * 1024
# How many following indexes recovery probes for, to tell a torn tail from a damaged middle.
PROBE_INDEXES = 1024


class CorruptLogError(Exception):
    """The log is damaged before its tail: acknowledged entries cannot be read back."""


def segment_name(first_index: int) -> str:
    return f"seg-{first_index:020d}.log"


def parse_segment_name(name: str) -> int | None:
    if name.startswith("seg-") and name.endswith(".log") and name[4:-4].isdigit():
        return int(name[4:-4])
    return None


def segment_header(first_index: int) -> bytes:
    return SEGMENT_HEADER.pack(MAGIC, first_index)


def checksum(length: int, term: int, index: int, payload: bytes) -> int:
    h = xxhash.xxh64(_SUM_FIELDS.pack(length, term, index))
    h.update(payload)
    return h.intdigest()


def encode_record(term: int, index: int, payload: bytes) -> bytes:
    n = len(payload)
    return RECORD_HEADER.pack(n, term, index, checksum(n, term, index, payload)) + payload


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What a segment holds: per valid record its term and offset; where validity ends."""

    first_index: int
    terms: list[int]
    offsets: list[int]
    valid_end: int  # bytes from the file start that hold the header and valid records
    torn: bool  # bytes after valid_end are a torn tail to cut


def _record_at(data: bytes, off: int, want_index: int | None) -> tuple[int, int, int] | None:
    """(term, index, end offset) of a valid record at ``off``, or None."""
    if off + RECORD_HEADER.size > len(data):
        return None
    n, term, index, chk = RECORD_HEADER.unpack_from(data, off)
    end = off + RECORD_HEADER.size + n
    if n > MAX_PAYLOAD or end > len(data) or (want_index is not None and index != want_index):
        return None
    if checksum(n, term, index, data[off + RECORD_HEADER.size : end]) != chk:
        return None
    return term, index, end


def _valid_record_after(data: bytes, start: int, next_index: int) -> int | None:
    """Offset of a valid record past ``start`` with an index after ``next_index``, if any."""
    misses = 0
    for idx in range(next_index + 1, next_index + 1 + PROBE_INDEXES):
        pat = _INDEX.pack(idx)
        pos = data.find(pat, start)
        misses = 0 if pos >= 0 else misses + 1
        if misses > 8:  # the index sequence is gone: nothing written after this point
            return None
        while pos >= 0:
            off = pos - 12  # the index field sits 12 bytes into a record header
            if off > start and _record_at(data, off, idx) is not None:
                return off
            pos = data.find(pat, pos + 1)
    return None


def scan_segment(data: bytes, first_index: int, is_last: bool, name: str = "") -> ScanResult:
    """Validate a segment's bytes; raises CorruptLogError (see module docstring)."""
    if len(data) < SEGMENT_HEADER.size:
        if is_last:
            return ScanResult(first_index, [], [], 0, True)
        raise CorruptLogError(f"segment {name} has a truncated header")
    magic, header_first = SEGMENT_HEADER.unpack_from(data)
    check_version("a raft log segment", numbered_magic_version(magic, MAGIC[:-2]), int(MAGIC[-2:]), name)
    if magic != MAGIC or header_first != first_index:
        raise CorruptLogError(f"segment {name} has a bad header")
    terms: list[int] = []
    offsets: list[int] = []
    off = SEGMENT_HEADER.size
    index = first_index
    while off < len(data):
        rec = _record_at(data, off, index)
        if rec is None:
            break
        terms.append(rec[0])
        offsets.append(off)
        off = rec[2]
        index += 1
    if off == len(data):
        return ScanResult(first_index, terms, offsets, off, False)
    if not is_last:
        raise CorruptLogError(f"segment {name}: damaged record at offset {off} (index {index}) before later segments")
    later = _valid_record_after(data, off, index)
    if later is not None:
        raise CorruptLogError(
            f"segment {name}: damaged record at offset {off} (index {index}) followed by a valid record at {later}"
        )
    return ScanResult(first_index, terms, offsets, off, True)

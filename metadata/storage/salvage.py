"""Salvage of a Raft node's log on start: keep the trusted prefix, discard the rest.

:class:`metadata.storage.log.DiskLog` refuses to open a log damaged before its tail
(:class:`~metadata.storage.log_format.CorruptLogError`), which is right for a single node: its
log is the only copy. A Raft follower has a better option: the leader holds the same
entries. :func:`salvage_log` runs before ``DiskLog.open`` and cuts the log at the first
record that fails its checks (bad checksum, broken index sequence, bad segment header,
missing segment), deleting every later segment, so the node serves nothing it cannot
trust and fetches the rest from the leader.

A torn tail (an incomplete last write, nothing valid after it) is left to DiskLog, which
cuts it as before: those entries were never acknowledged. Damage that is followed by
valid records is corruption of acknowledged entries; the result then says from which
index entries were discarded and the highest index seen, so the caller can refuse to vote
until it has caught up past it (an acknowledged entry counted towards a commit may be
among those lost).

Pure file surgery, synchronous: run it in an executor.
"""
from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from metadata.storage import log_format as fmt
from objstore.durable_io import fsync_dir

log = logging.getLogger(__name__)

_INDEX = struct.Struct("<Q")
_PROBE_MISSES = 8
_PROBE_LIMIT = 1 << 20


@dataclass(frozen=True, slots=True)
class SalvageResult:
    discarded_from: int = 0  # first index discarded (0: nothing was damaged)
    highest_seen: int = 0  # the highest index of a valid record seen in the discarded part
    detail: str = ""


def _valid_prefix(data: bytes, first: int) -> tuple[int, int]:
    """(records, end offset) of the valid records at the start of a segment's bytes."""
    off, index = fmt.SEGMENT_HEADER.size, first
    while off + fmt.RECORD_HEADER.size <= len(data):
        n, term, idx, chk = fmt.RECORD_HEADER.unpack_from(data, off)
        end = off + fmt.RECORD_HEADER.size + n
        if idx != index or n > fmt.MAX_PAYLOAD or end > len(data):
            break
        if fmt.checksum(n, term, idx, data[off + fmt.RECORD_HEADER.size : end]) != chk:
            break
        off, index = end, index + 1
    return index - first, off


def _record_ok(data: bytes, off: int, want: int) -> bool:
    if off < 0 or off + fmt.RECORD_HEADER.size > len(data):
        return False
    n, term, idx, chk = fmt.RECORD_HEADER.unpack_from(data, off)
    end = off + fmt.RECORD_HEADER.size + n
    return (idx == want and n <= fmt.MAX_PAYLOAD and end <= len(data)
            and fmt.checksum(n, term, idx, data[off + fmt.RECORD_HEADER.size : end]) == chk)


def _highest_after(data: bytes, start: int, next_index: int) -> int:
    """The highest index of a valid record found after ``start`` (0 if none)."""
    highest, misses = 0, 0
    idx = next_index
    while misses <= _PROBE_MISSES and idx < next_index + _PROBE_LIMIT:
        pat = _INDEX.pack(idx)
        pos = data.find(pat, start)
        found = False
        while pos >= 0:
            if _record_ok(data, pos - 12, idx):  # the index field sits 12 bytes into a header
                found = True
                break
            pos = data.find(pat, pos + 1)
        if found:
            highest, misses = idx, 0
        else:
            misses += 1
        idx += 1
    return highest


def salvage_log(directory: Path) -> SalvageResult:
    """Cut the log in ``directory`` at its first damaged record (see the module docstring)."""
    if not directory.is_dir():
        return SalvageResult()
    found = sorted((i, p) for p in directory.iterdir() if (i := fmt.parse_segment_name(p.name)) is not None)
    expected: int | None = None
    for n, (first, path) in enumerate(found):
        later = found[n + 1 :]
        if expected is not None and first != expected:
            return _discard(directory, path, None, later, expected, f"segment {path.name} does not follow {expected - 1}")
        data = path.read_bytes()
        ok_header = len(data) >= fmt.SEGMENT_HEADER.size and fmt.SEGMENT_HEADER.unpack_from(data) == (fmt.MAGIC, first)
        if not ok_header:
            if not later and len(data) < fmt.SEGMENT_HEADER.size:
                return SalvageResult()  # a torn header of the newest segment: DiskLog handles it
            return _discard(directory, path, None, later, first, f"segment {path.name} has a bad header")
        count, end = _valid_prefix(data, first)
        expected = first + count
        if end == len(data):
            continue
        highest = _highest_after(data, end, expected)
        if not later and highest == 0:
            return SalvageResult()  # a torn tail: never acknowledged, DiskLog cuts it
        return _discard(directory, path, end, later, expected,
                        f"damaged record at offset {end} of {path.name} (index {expected})", highest)
    return SalvageResult()


def _discard(directory: Path, path: Path, keep_bytes: int | None, later: list[tuple[int, Path]],
             from_index: int, detail: str, highest: int = 0) -> SalvageResult:
    for first, p in later:
        try:
            data = p.read_bytes()
            count, _ = _valid_prefix(data, first) if len(data) >= fmt.SEGMENT_HEADER.size else (0, 0)
            highest = max(highest, first + count - 1 if count else 0)
        except OSError as exc:
            # Unreadable: it held at least its first index; distrust at least that far.
            log.warning("cannot read segment %s while discarding it: %s", p, exc)
            highest = max(highest, first)
        p.unlink()
    if keep_bytes is None or keep_bytes <= fmt.SEGMENT_HEADER.size:
        path.unlink()
    else:
        with open(path, "r+b") as f:
            f.truncate(keep_bytes)
            os.fsync(f.fileno())
    fsync_dir(directory)
    log.error("raft log damaged: %s; discarded entries from index %d on (highest seen %d)", detail, from_index, highest)
    return SalvageResult(from_index, max(highest, from_index), detail)

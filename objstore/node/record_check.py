"""Verifying whole records on disk, for the scrubber: which bytes, in which order, in what
pieces. Synchronous file IO (run on an executor) and pure planning.

Invariants:
- :func:`check_record` verifies a record's header against the index, every block's xxh64,
  the footer (same seq, size, header checksum and data checksum as the index) and the
  whole-data checksum; pieces of one record may be checked in separate calls, in order,
  sharing one hasher.
- :func:`order_key` is stable across restarts (segment file and offset, blob directory and
  file name), so a pass can resume where it stopped; :func:`plan_pass` orders by it.
- :func:`batches` keeps each call to about :data:`CHUNK` bytes: small segment records of
  one file together, any other record alone (a large one is checked in chunks).
"""
from __future__ import annotations

import asyncio
import errno
import os
from typing import Iterable, Iterator

from objstore.checksum import StreamHasher
from objstore.errors import CorruptBlob
from objstore.node.blob import FOOTER_SIZE, block_span, decode_footer
from objstore.node.index import Entry
from objstore.node.reader import READ_CHUNK, read_blocks, verify_header
from objstore.node.store import BlobStore

CHUNK = READ_CHUNK


def chunk_bytes(entry: Entry, first: int, last: int) -> int:
    """Bytes on disk :func:`check_record` reads for blocks ``first..last`` (with the header
    when ``first`` is 0 and the footer when ``last`` is the last block)."""
    h = entry.header
    n = h.n_blocks
    total = entry.location.header_len if first == 0 else 0
    if n and first <= last:
        off0, _ = block_span(h.size, h.block_size, first)
        off_n, len_n = block_span(h.size, h.block_size, last)
        total += off_n + len_n - off0
    if last >= n - 1:
        total += FOOTER_SIZE
    return total


def check_record(fd: int, entry: Entry, first: int, last: int, hasher: StreamHasher) -> None:
    """Verify blocks ``first..last`` of ``entry`` (feeding their data to ``hasher``), its
    header when ``first`` is 0, and its footer and whole-data checksum when ``last`` is the
    last block (-1 for an empty blob). Synchronous; raises CorruptBlob."""
    h = entry.header
    n = h.n_blocks
    if first == 0:
        verify_header(fd, entry)
    if n and first <= last:
        hasher.update(read_blocks(fd, entry, first, last, 0, h.size - 1))
    if last >= n - 1:
        loc = entry.location
        footer = decode_footer(os.pread(fd, FOOTER_SIZE, loc.offset + loc.length - FOOTER_SIZE), entry.header_xxh,
                               h.size)
        if footer.seq != entry.seq or footer.data_xxh != entry.data_xxh:
            raise CorruptBlob(f"record footer of {h.version_id} does not match the index")
        if hasher.intdigest() != footer.data_xxh:
            raise CorruptBlob(f"data checksum of {h.version_id} does not match its footer")


def batches(entries: Iterable[Entry]) -> Iterator[list[Entry]]:
    """``entries`` (in file order) cut into the work of one scrub-thread call: consecutive
    segment records of one file up to :data:`CHUNK` bytes together; any other record alone."""
    batch: list[Entry] = []
    size = 0
    for e in entries:
        small = not e.in_own_file and e.location.length <= CHUNK
        if small and batch and size + e.location.length <= CHUNK and batch[0].location.file == e.location.file:
            batch.append(e)
            size += e.location.length
            continue
        if batch:
            yield batch
        if small:
            batch, size = [e], e.location.length
        else:
            yield [e]
            batch, size = [], 0
    if batch:
        yield batch


def order_key(e: Entry) -> tuple[str, str, int]:
    """Where a record comes in a pass: its group (a segment file, or a blob file's
    directory), its file, its offset. Stable across restarts, so a pass can resume."""
    loc = e.location
    return (os.path.dirname(loc.file) if e.in_own_file else loc.file, loc.file, loc.offset)


async def plan_pass(entries: list[Entry], step: int = 50_000) -> tuple[list[Entry], int]:
    """``entries`` in :func:`order_key` order and their total bytes. Grouped with a pause
    every ``step`` records and sorted group by group (a segment file, or one of the 256 blob
    directories), so even an index of millions of records never holds the loop for long."""
    groups: dict[str, list[Entry]] = {}
    total = 0
    for i, e in enumerate(entries):
        total += e.location.length
        groups.setdefault(order_key(e)[0], []).append(e)
        if i % step == step - 1:
            await asyncio.sleep(0)
    ordered: list[Entry] = []
    for name in sorted(groups):
        group = groups.pop(name)
        group.sort(key=order_key)
        ordered += group
        await asyncio.sleep(0)
    return ordered, total


def check_records(store: BlobStore, entries: list[Entry]) -> list[tuple[Entry, str, str]]:
    """Verify whole records in segments (synchronous); returns ``(entry, reason, kind)`` for
    each that failed: kind ``corrupt``, ``missing`` (its file is gone) or ``error`` (a read
    error other than EIO, not held against the record)."""
    failed = []
    for e in entries:
        try:
            fd, release = store.record_fd(e)
            try:
                check_record(fd, e, 0, e.header.n_blocks - 1, StreamHasher())
            finally:
                release()
        except CorruptBlob as exc:
            failed.append((e, str(exc), "corrupt"))
        except FileNotFoundError:
            failed.append((e, "file missing", "missing"))
        except OSError as exc:
            failed.append((e, str(exc), "corrupt" if exc.errno == errno.EIO else "error"))
    return failed

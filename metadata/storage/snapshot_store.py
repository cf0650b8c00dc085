"""The snapshot files of a metadata node: :class:`SnapshotStore`.

``snapshots/snap-<index 20 digits>-<term 20 digits>.snap`` holds
``OSMSNAP1 | meta length u32 | meta JSON {"v","index","term"} | body | body xxh64 u64 |
body length u64``. The body of a Raft snapshot is described in
:mod:`metadata.storage.files`; this module treats it as opaque bytes.

Invariants:
- A snapshot is written to a temporary name with every byte written (short writes are
  retried, :func:`objstore.durable_io.write_all`), fsynced, renamed to its final name and
  the directory fsynced: a crash or an IO error (ENOSPC, EIO) leaves no file under a final
  name that is not whole; the error reaches the caller. Stray temporaries are removed on
  open.
- A snapshot is used only if its trailer matches; the newest valid one wins. The ``keep``
  newest are kept, older ones deleted.

The methods are synchronous (run them in an executor from asyncio code);
:meth:`SnapshotStore.save` is the asyncio wrapper that writes a snapshot in a thread.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import xxhash

from objstore.durable_io import fsync_dir, write_file
from objstore.formats import check_version

log = logging.getLogger(__name__)

SNAP_MAGIC = b"OSMSNAP1"
_U32 = struct.Struct("<I")
_TRAILER = struct.Struct("<QQ")


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """A snapshot file on disk, named for the last log index it includes and that term."""

    index: int  # the last log index the snapshot includes
    term: int  # the term of that entry
    path: Path


def snapshot_name(index: int, term: int) -> str:
    return f"snap-{index:020d}-{term:020d}.snap"


class SnapshotStore:
    """The snapshots of one node, newest first."""

    def __init__(self, directory: Path, keep: int = 2) -> None:
        self.dir = directory
        self.keep = keep
        self.dir.mkdir(parents=True, exist_ok=True)
        for p in self.dir.glob("*.tmp"):
            p.unlink()

    def list(self) -> list[SnapshotFile]:
        """Every snapshot file by name (not yet verified), newest first."""
        out = []
        for p in self.dir.glob("snap-*.snap"):
            parts = p.stem.split("-")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                out.append(SnapshotFile(int(parts[1]), int(parts[2]), p))
        return sorted(out, key=lambda m: m.index, reverse=True)

    def verify(self, meta: SnapshotFile) -> bool:
        """True when the file's meta and body checksum are intact."""
        try:
            with open(meta.path, "rb") as f:
                body_start, index, term = _read_meta(f)
                if (index, term) != (meta.index, meta.term):
                    return False
                size = os.fstat(f.fileno()).st_size
                body_len = size - body_start - _TRAILER.size
                if body_len < 0:
                    return False
                h = xxhash.xxh64()
                left = body_len
                while left:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk:
                        return False
                    h.update(chunk)
                    left -= len(chunk)
                digest, length = _TRAILER.unpack(f.read(_TRAILER.size))
                return digest == h.intdigest() and length == body_len
        except (OSError, ValueError, struct.error):
            return False

    def latest_valid(self) -> SnapshotFile | None:
        for meta in self.list():
            if self.verify(meta):
                return meta
            log.warning("ignoring damaged snapshot %s", meta.path)
        return None

    def read_lines(self, meta: SnapshotFile) -> Iterator[bytes]:
        """The body of a verified snapshot, line by line."""
        with open(meta.path, "rb") as f:
            body_start, _, _ = _read_meta(f)
            body_end = os.fstat(f.fileno()).st_size - _TRAILER.size
            f.seek(body_start)
            pos = body_start
            for line in f:
                if pos + len(line) > body_end:
                    line = line[: body_end - pos]
                if line:
                    yield line
                pos += len(line)
                if pos >= body_end:
                    return

    async def save(self, index: int, term: int, chunks: Iterable[bytes]) -> SnapshotFile:
        """Write a snapshot durably; ``chunks`` is consumed in a worker thread."""
        meta = await asyncio.get_running_loop().run_in_executor(None, self.write, index, term, chunks)
        return meta

    def write(self, index: int, term: int, chunks: Iterable[bytes]) -> SnapshotFile:
        """Write a snapshot durably and atomically, then delete all but the ``keep`` newest;
        raises OSError (nothing is left under the final name)."""
        final = self.dir / snapshot_name(index, term)
        tmp = final.with_name(final.name + ".tmp")

        def content() -> Iterator[bytes]:
            meta = json.dumps({"v": 1, "index": index, "term": term}).encode()
            yield SNAP_MAGIC + _U32.pack(len(meta)) + meta
            h = xxhash.xxh64()
            length = 0
            for chunk in chunks:
                h.update(chunk)
                length += len(chunk)
                yield chunk
            yield _TRAILER.pack(h.intdigest(), length)

        try:
            write_file(tmp, content())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.dir)
        self.prune()
        return SnapshotFile(index, term, final)

    def prune(self) -> None:
        """Delete all but the ``keep`` newest snapshot files."""
        for old in self.list()[self.keep :]:
            old.path.unlink(missing_ok=True)


def _read_meta(f: BinaryIO) -> tuple[int, int, int]:
    head = f.read(len(SNAP_MAGIC) + _U32.size)
    if len(head) != len(SNAP_MAGIC) + _U32.size or head[: len(SNAP_MAGIC)] != SNAP_MAGIC:
        raise ValueError("not a snapshot file")
    (n,) = _U32.unpack_from(head, len(SNAP_MAGIC))
    meta = json.loads(f.read(n))
    check_version("a snapshot file", meta.get("v"), 1)
    if meta.get("v") != 1:
        raise ValueError("unsupported snapshot version")
    return len(head) + n, int(meta["index"]), int(meta["term"])

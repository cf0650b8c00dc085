"""Small durable files of a metadata node: the term/vote state and state-machine snapshots.

Every file here is replaced atomically: written to a temporary name, fsynced, renamed over
the final name, and the directory fsynced. A crash leaves the old file or the new one,
never a mix; stray temporaries are ignored and removed on open.

- ``hard-state``: ``{"v": 1, "term": T, "vote": V, "xxh64": hex}`` (checksum over the
  term and vote).
- snapshots: ``snapshots/snap-<index 20 digits>-<term 20 digits>.snap`` holding
  ``OSMSNAP1 | meta length u32 | meta JSON {"v","index","term"} | body | body xxh64 u64 |
  body length u64``. A snapshot is used only if the trailer matches; the newest valid one
  wins. The ``keep`` newest are kept, older ones deleted.

The functions are synchronous (run them in an executor from asyncio code);
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

log = logging.getLogger(__name__)

SNAP_MAGIC = b"OSMSNAP1"
_U32 = struct.Struct("<I")
_TRAILER = struct.Struct("<QQ")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` durably and atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


# --- term and vote ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HardState:
    term: int = 0
    vote: str = ""


def _hard_state_sum(term: int, vote: str) -> str:
    return xxhash.xxh64(f"{term}\n{vote}".encode()).hexdigest()


def save_hard_state(path: Path, hs: HardState) -> None:
    d = {"v": 1, "term": hs.term, "vote": hs.vote, "xxh64": _hard_state_sum(hs.term, hs.vote)}
    atomic_write(path, json.dumps(d).encode())


def load_hard_state(path: Path) -> HardState:
    """The saved state, or the zero state when none was ever saved; ValueError if damaged."""
    try:
        d = json.loads(path.read_bytes())
    except FileNotFoundError:
        return HardState()
    if d.get("v") != 1 or d.get("xxh64") != _hard_state_sum(d["term"], d["vote"]):
        raise ValueError(f"{path} is damaged")
    return HardState(d["term"], d["vote"])


# --- snapshots --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int  # the last log index the snapshot includes
    term: int  # the term of that entry
    path: Path


def _snap_name(index: int, term: int) -> str:
    return f"snap-{index:020d}-{term:020d}.snap"


class SnapshotStore:
    """The snapshots of one node, newest first."""

    def __init__(self, directory: Path, keep: int = 2) -> None:
        self.dir = directory
        self.keep = keep
        self.dir.mkdir(parents=True, exist_ok=True)
        for p in self.dir.glob("*.tmp"):
            p.unlink()

    def list(self) -> list[SnapshotMeta]:
        """Every snapshot file by name (not yet verified), newest first."""
        out = []
        for p in self.dir.glob("snap-*.snap"):
            parts = p.stem.split("-")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                out.append(SnapshotMeta(int(parts[1]), int(parts[2]), p))
        return sorted(out, key=lambda m: m.index, reverse=True)

    def verify(self, meta: SnapshotMeta) -> bool:
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

    def latest_valid(self) -> SnapshotMeta | None:
        for meta in self.list():
            if self.verify(meta):
                return meta
            log.warning("ignoring damaged snapshot %s", meta.path)
        return None

    def read_lines(self, meta: SnapshotMeta) -> Iterator[bytes]:
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

    async def save(self, index: int, term: int, chunks: Iterable[bytes]) -> SnapshotMeta:
        """Write a snapshot durably; ``chunks`` is consumed in a worker thread."""
        meta = await asyncio.get_running_loop().run_in_executor(None, self.write, index, term, chunks)
        return meta

    def write(self, index: int, term: int, chunks: Iterable[bytes]) -> SnapshotMeta:
        """Write a snapshot durably and atomically, then delete all but the ``keep`` newest."""
        final = self.dir / _snap_name(index, term)
        tmp = final.with_name(final.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                meta = json.dumps({"v": 1, "index": index, "term": term}).encode()
                f.write(SNAP_MAGIC + _U32.pack(len(meta)) + meta)
                h = xxhash.xxh64()
                length = 0
                for chunk in chunks:
                    h.update(chunk)
                    length += len(chunk)
                    f.write(chunk)
                f.write(_TRAILER.pack(h.intdigest(), length))
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, final)
        fsync_dir(self.dir)
        for old in self.list()[self.keep :]:
            old.path.unlink(missing_ok=True)
        return SnapshotMeta(index, term, final)


def _read_meta(f: BinaryIO) -> tuple[int, int, int]:
    head = f.read(len(SNAP_MAGIC) + _U32.size)
    if len(head) != len(SNAP_MAGIC) + _U32.size or head[: len(SNAP_MAGIC)] != SNAP_MAGIC:
        raise ValueError("not a snapshot file")
    (n,) = _U32.unpack_from(head, len(SNAP_MAGIC))
    meta = json.loads(f.read(n))
    if meta.get("v") != 1:
        raise ValueError("unsupported snapshot version")
    return len(head) + n, int(meta["index"]), int(meta["term"])

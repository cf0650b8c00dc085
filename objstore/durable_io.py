"""Durable file writes shared by every writer that acknowledges data (metadata log, hard
state, snapshots, storage-node segments and blob files).

Contracts:
- :func:`write_all` writes every byte or raises: ``os.write`` may write fewer bytes than
  asked (a signal, a nearly full disk), so it loops until the whole buffer is written. An
  ``OSError`` (ENOSPC, EIO, ...) propagates; the caller must then treat the file's tail as
  unknown (cut it back or stop writing) and acknowledge nothing from the failed write.
- :func:`fsync_dir` makes a directory's entries (a created, renamed or deleted file)
  durable.
- :func:`atomic_write` replaces a file so that a crash leaves the old content or the new,
  never a mix: temporary file, every byte written, fsync, rename, fsync of the directory.
  On failure the temporary file is removed and the old file is untouched.

``os.write`` is looked up at call time, so tests can replace it to inject short writes or
errors.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

Write = Callable[[int, "bytes | memoryview"], int]


def write_all(fd: int, data: "bytes | bytearray | memoryview", write: Write | None = None) -> None:
    """Write all of ``data`` to ``fd`` (looping over short writes); raises OSError."""
    w = write or os.write
    view = memoryview(data)
    done = 0
    while done < len(view):
        n = w(fd, view[done:])
        if n <= 0:
            raise OSError(f"write returned {n} with {len(view) - done} bytes left")
        done += n


def fsync_dir(path: "Path | str") -> None:
    """Make the entries of directory ``path`` durable; raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_BUFFER = 1 << 20


def write_file(path: "Path | str", chunks: Iterable[bytes]) -> None:
    """Create (or truncate) ``path``, write every chunk fully and fsync it; raises OSError.

    Small chunks are gathered into writes of about 1 MiB."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        buf = bytearray()
        for chunk in chunks:
            buf += chunk
            if len(buf) >= _BUFFER:
                write_all(fd, buf)
                buf.clear()
        write_all(fd, buf)
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: "Path | str", data: bytes) -> None:
    """Replace ``path`` by ``data`` durably and atomically (see the module docstring)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write_file(tmp, [data])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)

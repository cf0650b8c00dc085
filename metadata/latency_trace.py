"""Timestamps of one write's way through a metadata node, for profiling the commit path.

Off unless ``OBJSTORE_METADATA_TRACE`` names a directory: then each process appends
``<event> <index> <monotonic ns> <process CPU ns>`` lines to ``<dir>/<pid>.trace`` (one ``os.write`` per
event; CLOCK_MONOTONIC is shared by the processes of a machine, so the files of a group's
members line up). ``ops/profile_metadata_commit.py`` reads them.
"""
from __future__ import annotations

import os
import time

_DIR = os.environ.get("OBJSTORE_METADATA_TRACE", "")
enabled = bool(_DIR)
_fd: int | None = None


def event(name: str, index: int = 0) -> None:
    """Record ``name`` for log index ``index`` now (nothing when tracing is off)."""
    global _fd
    if not enabled:
        return
    if _fd is None:
        _fd = os.open(os.path.join(_DIR, f"{os.getpid()}.trace"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(_fd, f"{name} {index} {time.monotonic_ns()} {time.process_time_ns()}\n".encode())

"""Damage on disk: find where a blob's bytes are stored and flip one of them.

Tests write a body that starts with a random marker, find the files holding the marker
under a storage node's data dir (a blob file, or a segment record for a small blob), and
flip a byte there, behind the node's back, as a failing disk would.
"""
from __future__ import annotations

import os
from pathlib import Path


def files_holding(root: Path, pattern: bytes) -> list[tuple[Path, int]]:
    """(file, offset) of every file under ``root`` holding ``pattern`` (its first offset)."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        at = path.read_bytes().find(pattern)
        if at >= 0:
            found.append((path, at))
    return found


def flip(path: Path, offset: int, mask: int = 0xFF) -> None:
    """XOR the byte at ``offset`` of ``path`` with ``mask`` (all bits by default), durably."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))
        f.flush()
        os.fsync(f.fileno())

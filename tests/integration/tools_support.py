"""Shared pieces of the S3 tool tests (AWS CLI, rclone, s3cmd) against a real cluster.

- ``tool_env`` builds a child environment with every ``AWS_*``, ``RCLONE_*`` and
  ``S3CMD_*`` variable of the caller removed and HOME pointed at a temporary folder, so
  the user's own configuration and credentials are never read or written.
- ``run`` runs a tool with a timeout and fails with its output when it exits non-zero.
- ``make_tree`` writes a seeded, reproducible folder tree (nested folders, sizes from 0 B
  to 3 MiB, names with spaces, unicode and URL-special characters); ``read_tree`` reads
  any tree back as {relative posix path: bytes} for byte-exact comparisons.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping

import pytest

TOOL_TIMEOUT = 120.0

# Relative paths of the standard tree; sizes are drawn per file from SIZES.
TREE_NAMES = (
    "README.txt",
    "empty.dat",
    "docs/report 2024.txt",
    "docs/notes/été à la plage.md",
    "docs/notes/ñandú y pingüino.txt",
    "docs/notes/deeper/still deeper/leaf.bin",
    "photos/日本語 フォルダ/写真 01.jpg",
    "photos/日本語 フォルダ/写真 02.jpg",
    "photos/raw/IMG_0001.CR2",
    "photos/raw/IMG_0002.CR2",
    "music/Ünïcödé Artist/01 - Track one.flac",
    "music/Ünïcödé Artist/02 - Track two.flac",
    "special/plus+sign.txt",
    "special/percent%20literal.txt",
    "special/amp&eq=semi;colon.txt",
    "special/tilde~quote'paren(1)!star*.txt",
    "special/comma,at@dollar$.txt",
    "special/emoji 😀 smile.txt",
    "a/b/c/d/e/f/deep.txt",
)
SIZES = (0, 1, 7, 100, 1023, 4096, 65_536, 100_000, 262_144 + 3, 1024 * 1024, 3 * 1024 * 1024)


def tool_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any S3 tool settings, HOME at ``home``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_", "S3CMD_", "BOTO_"))}
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env["LC_ALL"] = env["LANG"] = "C.UTF-8"
    env.update(extra)
    return env


def find_tool(name: str, install_hint: str) -> str:
    """Path of a tool: next to this Python first (the venv), then on PATH; skip if absent."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed ({install_hint})")
    return found


def run(cmd: list[str], env: Mapping[str, str], check: bool = True, text: bool = True,
        timeout: float = TOOL_TIMEOUT, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a tool; raise AssertionError with its output if it fails (when ``check``).

    ``text=False`` keeps stdout as bytes (for byte-exact ``cat``-style commands).
    """
    r = subprocess.run(cmd, capture_output=True, text=text, env=dict(env), timeout=timeout, cwd=cwd,
                       stdin=subprocess.DEVNULL, **({"encoding": "utf-8", "errors": "replace"} if text else {}))
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout!r}\n{r.stderr!r}")
    return r


def purge_bucket(s3, name: str) -> None:
    """Delete every object of ``name`` (one DeleteObject each) and the bucket; ignore a missing bucket."""
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=name, Key=obj["Key"])
        s3.delete_bucket(Bucket=name)
    except s3.exceptions.NoSuchBucket:
        pass


def make_tree(root: Path, seed: int = 7, copies: int = 3) -> dict[str, bytes]:
    """Write about ``len(TREE_NAMES) * copies`` files under ``root``; return their contents.

    Copy 0 uses the names as they are; copy i>0 nests them under ``set <i>/``. Sizes cycle
    through SIZES with a seeded shuffle so every size (0 B .. 3 MiB) appears.
    """
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    big_left = 2  # keep the tree near 10 MiB: two 3 MiB files, the rest smaller
    for i in range(copies):
        sizes = list(SIZES)
        rng.shuffle(sizes)
        for j, name in enumerate(TREE_NAMES):
            rel = name if i == 0 else f"set {i}/{name}"
            size = sizes[j % len(sizes)]
            if name == "empty.dat":
                size = 0
            elif size == SIZES[-1]:
                if big_left > 0:
                    big_left -= 1
                else:
                    size = 200_000
            files[rel] = rng.randbytes(size)
    write_tree(root, files)
    return files


def write_tree(root: Path, files: Mapping[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` as {posix relative path: bytes}."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def sizes_of(files: Mapping[str, bytes]) -> dict[str, int]:
    return {k: len(v) for k, v in files.items()}


def assert_same_tree(expected: Mapping[str, bytes], actual: Mapping[str, bytes]) -> None:
    """Same paths and byte-identical contents; the message names what differs."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    differ = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    assert not (missing or extra or differ), f"missing={missing} extra={extra} differ={differ}"

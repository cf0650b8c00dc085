"""The small durable files of a metadata node and the Raft snapshot format.

Layout under ``<data_dir>/raft`` (see :mod:`metadata.storage.raft_storage`):

- ``hard-state``: ``{"v": 1, "term", "vote", "commit", "xxh64"}``, the checksum over term,
  vote and commit. Replaced atomically (:func:`objstore.durable_io.atomic_write`).
- ``recovering``: ``{"v": 1, "until": N, "reason": "..."}``, present while the node
  distrusts its own durable state (a damaged log, snapshot or hard state was found on
  start). While it exists the node neither votes nor campaigns; it is removed once the
  node has learnt from a leader a commit index ``>= until``.
- ``snapshots/snap-<index>-<term>.snap``: the files of :class:`metadata.storage.snapshot_store.SnapshotStore`
  (magic, meta, body, xxh64 trailer). The body starts with one Raft header line
  ``{"v": 1, "kind": "raft-snapshot", "index", "term", "conf_state", "addresses"}``
  followed by the state machine's snapshot lines (:mod:`metadata.fsm.snapshot`).

Invariants: a file that fails its checksum or version check is reported as damaged, never
half-used; the snapshot header's index and term equal the file's own meta.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

__all__ = ["DamagedFile", "LoadedSnapshot", "header_line", "load_hard_state", "load_recovering", "read_snapshot",
           "read_snapshot_meta", "save_hard_state", "save_recovering", "snapshot_chunks", "snapshot_name",
           "verify_snapshot_file"]

import xxhash

from metadata.fsm.machine import MetadataFSM
from metadata.heap import collector_paused
from metadata.fsm.snapshot import FrozenState, frozen_chunks, restore
from metadata.raft.records import ConfState, HardState, SnapshotMeta
from metadata.storage.snapshot_store import SnapshotFile, SnapshotStore, snapshot_name
from objstore.durable_io import atomic_write
from objstore.formats import check_version

HARD_STATE_VERSION = 1
SNAPSHOT_HEADER_VERSION = 1
SNAPSHOT_KIND = "raft-snapshot"


class DamagedFile(ValueError):
    """A durable file exists but fails its checksum or format check."""


# --- hard state -------------------------------------------------------------------------------


def _hs_sum(hs: HardState) -> str:
    return xxhash.xxh64(f"{hs.term}\n{hs.vote}\n{hs.commit}".encode()).hexdigest()


def save_hard_state(path: Path, hs: HardState) -> None:
    """Replace the hard-state file durably (run in an executor)."""
    d = {"v": HARD_STATE_VERSION, "term": hs.term, "vote": hs.vote, "commit": hs.commit, "xxh64": _hs_sum(hs)}
    atomic_write(path, json.dumps(d).encode())


def load_hard_state(path: Path) -> HardState | None:
    """The saved hard state, None if there is none; raises DamagedFile."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        d = json.loads(raw)
        check_version("the raft hard state", d.get("v"), HARD_STATE_VERSION, str(path))
        hs = HardState(int(d["term"]), str(d["vote"]), int(d["commit"]))
        ok = d.get("v") == HARD_STATE_VERSION and d.get("xxh64") == _hs_sum(hs)
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise DamagedFile(f"{path} is damaged")
    return hs


# --- the recovering marker --------------------------------------------------------------------


def save_recovering(path: Path, until: int, reason: str) -> None:
    atomic_write(path, json.dumps({"v": 1, "until": until, "reason": reason}).encode())


def load_recovering(path: Path) -> tuple[int, str] | None:
    """(until, reason) while the node is recovering, else None (a damaged marker counts as
    recovering until everything it could have held: index 2**63)."""
    try:
        d = json.loads(path.read_bytes())
        return int(d["until"]), str(d.get("reason", ""))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return 2**63, "damaged recovering marker"


# --- snapshots --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadedSnapshot:
    meta: SnapshotMeta
    addresses: dict[str, str]
    fsm: MetadataFSM


def header_line(meta: SnapshotMeta, addresses: dict[str, str]) -> bytes:
    d = {"v": SNAPSHOT_HEADER_VERSION, "kind": SNAPSHOT_KIND, "index": meta.index, "term": meta.term,
         "conf_state": meta.conf_state.to_dict(), "addresses": dict(sorted(addresses.items()))}
    return json.dumps(d, separators=(",", ":")).encode() + b"\n"


def snapshot_chunks(meta: SnapshotMeta, addresses: dict[str, str], frozen: FrozenState,
                    pause_s: float = 0.0) -> Iterator[bytes]:
    """The body of a Raft snapshot file (may run in any thread; ``pause_s``: see
    :func:`metadata.fsm.snapshot.frozen_chunks`)."""
    yield header_line(meta, addresses)
    yield from frozen_chunks(frozen, pause_s=pause_s)


def _parse_header(line: bytes, index: int, term: int) -> tuple[SnapshotMeta, dict[str, str]]:
    try:
        d = json.loads(line)
        check_version("a raft snapshot header", d.get("v"), SNAPSHOT_HEADER_VERSION)
        if d.get("v") != SNAPSHOT_HEADER_VERSION or d.get("kind") != SNAPSHOT_KIND:
            raise ValueError("not a raft snapshot header")
        meta = SnapshotMeta(int(d["index"]), int(d["term"]), ConfState.from_dict(d["conf_state"]))
        addresses = {str(k): str(v) for k, v in d.get("addresses", {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DamagedFile(f"bad raft snapshot header: {exc}") from None
    if (meta.index, meta.term) != (index, term):
        raise DamagedFile(f"snapshot header says {meta.index}/{meta.term}, the file {index}/{term}")
    return meta, addresses


def read_snapshot(store: SnapshotStore, path: Path, index: int, term: int) -> LoadedSnapshot:
    """Load a verified snapshot file (run in an executor); raises DamagedFile."""
    lines: Iterable[bytes] = store.read_lines(SnapshotFile(index, term, path))
    it = iter(lines)
    try:
        meta, addresses = _parse_header(next(it), index, term)
    except StopIteration:
        raise DamagedFile(f"{path} has an empty body") from None
    try:
        with collector_paused():  # millions of new objects, none of them garbage
            fsm = restore(it)
    except ValueError as exc:
        raise DamagedFile(f"{path}: {exc}") from None
    if fsm.applied_index != index:
        raise DamagedFile(f"{path}: state machine at {fsm.applied_index}, snapshot at {index}")
    return LoadedSnapshot(meta, addresses, fsm)


def read_snapshot_meta(store: SnapshotStore, path: Path, index: int, term: int) -> tuple[SnapshotMeta, dict[str, str]]:
    """Only the Raft header of a snapshot file; raises DamagedFile."""
    for line in store.read_lines(SnapshotFile(index, term, path)):
        return _parse_header(line, index, term)
    raise DamagedFile(f"{path} has an empty body")


def verify_snapshot_file(store: SnapshotStore, path: Path, index: int, term: int) -> bool:
    """Whether ``path`` is an intact snapshot file for (index, term)."""
    return store.verify(SnapshotFile(index, term, path))

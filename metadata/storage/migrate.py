"""Upgrade of a single-node metadata data dir written before Raft into a one-voter group.

The old layout (``<node dir>/log/``, ``hard-state`` ``{"v": 1, "term", "vote", "xxh64"}``,
``snapshots/`` whose body is the bare state machine) is read once: the newest valid
snapshot plus the replay of the log after it gives the state machine at the last index
``N`` (term ``T``). It is written as the Raft layout (:mod:`metadata.storage.files`) of a
group whose only voter is this node: a Raft snapshot at ``(N, T)`` with the configuration
``{node}`` and its address, a hard state ``(term, "", commit N)`` and an empty log that
continues at ``N + 1``.

Crash safety: the new layout is built in ``raft.migrating/``, made durable, then renamed
to ``raft/`` (the commit point) and the directory fsynced; only then are the old files
deleted. A crash before the rename leaves the old layout (``raft.migrating/`` is thrown
away and the migration runs again); a crash after it leaves ``raft/`` plus old files,
which are deleted on the next start. Damage to the old log before its tail raises
:class:`~metadata.storage.log_format.CorruptLogError`, as the old code did.
"""
from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path

import xxhash

from metadata.api.commands import decode_command
from metadata.fsm.machine import MetadataFSM
from metadata.fsm.snapshot import freeze, restore
from metadata.raft.records import ConfState, HardState, SnapshotMeta
from metadata.storage import files
from metadata.storage.log import DEFAULT_SEGMENT_BYTES, DiskLog
from metadata.storage.log_format import CorruptLogError
from metadata.storage.snapshot_store import SnapshotStore
from objstore.durable_io import fsync_dir

log = logging.getLogger(__name__)

REPLAY_BATCH = 1000
_LEGACY_NAMES = ("log", "snapshots", "hard-state")


def has_legacy_layout(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a single-node layout not yet migrated (no ``raft/``)."""
    return not (data_dir / "raft").exists() and any((data_dir / n).exists() for n in _LEGACY_NAMES)


def load_legacy_term(path: Path) -> int:
    """The term of an old single-node ``hard-state`` (0 when absent); raises CorruptLogError."""
    try:
        d = json.loads(path.read_bytes())
    except FileNotFoundError:
        return 0
    except ValueError:
        raise CorruptLogError(f"{path} is damaged") from None
    expected = xxhash.xxh64(f"{d.get('term')}\n{d.get('vote')}".encode()).hexdigest()
    if d.get("v") != 1 or d.get("xxh64") != expected:
        raise CorruptLogError(f"{path} is damaged")
    return int(d["term"])


async def _read_legacy(data_dir: Path, segment_bytes: int) -> tuple[MetadataFSM, int, int]:
    """(state machine, term of its last entry, highest term seen) of the old layout."""
    loop = asyncio.get_running_loop()
    snapshots = SnapshotStore(data_dir / "snapshots")
    found = await loop.run_in_executor(None, snapshots.latest_valid)
    fsm, applied_term = MetadataFSM(), 0
    if found is not None:
        fsm = await loop.run_in_executor(None, lambda: restore(snapshots.read_lines(found)))
        applied_term = found.term
    dlog = await DiskLog.open(data_dir / "log", segment_bytes)
    try:
        if dlog.first_index > fsm.applied_index + 1:
            raise CorruptLogError(
                f"log starts at {dlog.first_index} but the newest valid snapshot ends at {fsm.applied_index}")
        lo = fsm.applied_index + 1
        while lo <= dlog.last_index:
            hi = min(dlog.last_index, lo + REPLAY_BATCH - 1)
            for e in dlog.entries(lo, hi):
                fsm.apply(e.index, decode_command(e.payload))
                applied_term = e.term
            lo = hi + 1
        term = max(await loop.run_in_executor(None, load_legacy_term, data_dir / "hard-state"), dlog.last_term,
                   applied_term)
    finally:
        await dlog.close()
    return fsm, applied_term, term


def _write_raft_layout(root: Path, fsm: MetadataFSM, applied_term: int, term: int, node_id: str,
                       address: str) -> None:
    """The one-voter Raft layout at ``root`` (a fresh directory), durable."""
    meta = SnapshotMeta(fsm.applied_index, applied_term, ConfState(voters=frozenset({node_id})))
    store = SnapshotStore(root / "snapshots")
    store.write(meta.index, meta.term, files.snapshot_chunks(meta, {node_id: address}, freeze(fsm)))
    files.save_hard_state(root / "hard-state", HardState(term, "", meta.index))
    fsync_dir(root)


def _remove_legacy(data_dir: Path) -> None:
    for name in _LEGACY_NAMES:
        p = data_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    fsync_dir(data_dir)


async def migrate_single_node(data_dir: Path, node_id: str, address: str,
                              segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> bool:
    """Convert an old single-node layout in ``data_dir`` into a one-voter Raft layout
    (see the module docstring); True when something was migrated or cleaned up.

    Raises CorruptLogError when the old log or hard state is damaged."""
    loop = asyncio.get_running_loop()
    root, work = data_dir / "raft", data_dir / "raft.migrating"
    if root.exists():
        if any((data_dir / n).exists() for n in _LEGACY_NAMES):
            log.warning("metadata node %s: removing the single-node files left by an interrupted migration "
                        "(%s already holds the migrated state)", node_id, root)
            await loop.run_in_executor(None, _remove_legacy, data_dir)
            return True
        return False
    if not has_legacy_layout(data_dir):
        return False
    log.warning("metadata node %s: %s holds a single-node metadata log from an earlier version; "
                "migrating it to a one-voter Raft group", node_id, data_dir)
    await loop.run_in_executor(None, lambda: shutil.rmtree(work, ignore_errors=True))
    fsm, applied_term, term = await _read_legacy(data_dir, segment_bytes)
    if fsm.applied_index == 0:
        log.warning("metadata node %s: the single-node log is empty; starting a new group", node_id)
        await loop.run_in_executor(None, _remove_legacy, data_dir)
        return True

    def commit() -> None:
        work.mkdir()
        _write_raft_layout(work, fsm, applied_term, term, node_id, address)
        work.rename(root)
        fsync_dir(data_dir)
        _remove_legacy(data_dir)

    await loop.run_in_executor(None, commit)
    log.warning("metadata node %s: migrated %d entries (term %d) into %s as a one-voter Raft group at %s",
                node_id, fsm.applied_index, term, root, address)
    return True

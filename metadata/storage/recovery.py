"""Opening a Raft metadata node's durable state: bootstrap, recovery, and distrust.

:func:`open_storage` turns ``<data_dir>/raft`` into a :class:`DiskRaftStorage`, the state
machine restored from the newest valid snapshot, the address book and the node's trust
in its own state.

Rules:
- **Bootstrap** (``--peers``, no ``--join``, nothing on disk): the log starts with one
  CONF entry per initial voter (term 1, sorted by id, each carrying the voter's address),
  committed by construction; identical on every initial member given the same peers
  (the layout of :func:`metadata.raft.storage.bootstrap_entries`). A joining node starts
  empty and waits for the leader.
- **Recovery**: the log is salvaged (:mod:`metadata.storage.salvage`); damaged
  snapshots are deleted and the newest intact one is used; a log that does not continue
  the snapshot is reset to start after it.
- **Distrust**: when acknowledged state may have been lost (log records discarded, hard
  state damaged or missing, a gap between snapshot and log), the node records
  ``recovering`` with the highest index it may have held. It then neither votes nor
  campaigns until a leader has brought its commit index past that point, so its lost
  acknowledgements cannot help elect a leader that misses a committed entry.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from metadata.fsm.machine import MetadataFSM
from metadata.raft.confchange import ConfChange, ConfChangeType
from metadata.raft.records import Entry, EntryKind, HardState, SnapshotMeta
from metadata.raft.storage import pack_entry
from metadata.storage import files
from metadata.storage.log import DEFAULT_SEGMENT_BYTES, DiskLog, LogRecord
from metadata.storage.raft_storage import DiskRaftStorage
from metadata.storage.salvage import salvage_log
from metadata.storage.snapshot_store import SnapshotStore

log = logging.getLogger(__name__)


class StorageError(Exception):
    """The data dir cannot be used as a Raft node's storage (the message says why)."""


@dataclass
class Opened:
    storage: DiskRaftStorage
    fsm: MetadataFSM
    addresses: dict[str, str]
    recovering_until: int = 0  # 0: the node trusts its state
    notes: list[str] = field(default_factory=list)


def bootstrap_log(peers: dict[str, str]) -> tuple[list[Entry], HardState]:
    """The initial log and hard state of a new cluster's members (addresses as contexts)."""
    if not peers:
        raise StorageError("a new cluster needs at least one peer")
    entries = [Entry(i + 1, 1, ConfChange(ConfChangeType.ADD_VOTER, nid, peers[nid].encode()).encode(), EntryKind.CONF)
               for i, nid in enumerate(sorted(peers))]
    return entries, HardState(1, "", len(entries))


def conf_addresses(entries: "list[Entry] | tuple[Entry, ...]") -> dict[str, str]:
    """Node addresses announced by the CONF entries among ``entries``."""
    out: dict[str, str] = {}
    for e in entries:
        if e.kind is EntryKind.CONF:
            try:
                cc = ConfChange.decode(e.data)
            except ValueError:
                continue
            if cc.context and cc.type is not ConfChangeType.REMOVE:
                out[cc.node_id] = cc.context.decode("utf-8", "replace")
    return out


async def open_storage(data_dir: Path, peers: dict[str, str], join: bool,
                       segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> Opened:
    """Open (bootstrap, recover) the Raft state in ``data_dir``; raises StorageError."""
    loop = asyncio.get_running_loop()
    root = data_dir / "raft"
    if not root.exists() and ((data_dir / "log").exists() or (data_dir / "hard-state").exists()):
        raise StorageError(f"{data_dir} holds a single-node metadata log; start it without --peers/--join "
                           "or use a fresh data dir for a Raft member")
    root.mkdir(parents=True, exist_ok=True)
    incoming = root / "incoming"
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir()
    notes: list[str] = []
    suspect = 0  # the highest index whose acknowledgement we may have lost (0: none)

    salvage = await loop.run_in_executor(None, salvage_log, root / "log")
    if salvage.discarded_from:
        notes.append(f"log damaged ({salvage.detail}); discarded from index {salvage.discarded_from}")
        suspect = max(suspect, salvage.highest_seen)

    snapshots = SnapshotStore(root / "snapshots")
    loaded: files.LoadedSnapshot | None = None
    snap_path: Path | None = None
    for fm in snapshots.list():
        try:
            if not await loop.run_in_executor(None, files.verify_snapshot_file, snapshots, fm.path, fm.index, fm.term):
                raise files.DamagedFile(f"{fm.path.name} fails its checksum")
            loaded = await loop.run_in_executor(None, files.read_snapshot, snapshots, fm.path, fm.index, fm.term)
            snap_path = fm.path
            break
        except (files.DamagedFile, OSError) as exc:
            notes.append(f"snapshot {fm.path.name} damaged ({exc}); deleted")
            fm.path.unlink(missing_ok=True)
    snap = loaded.meta if loaded else SnapshotMeta()

    dlog = await DiskLog.open(root / "log", segment_bytes)
    try:
        try:
            hs = files.load_hard_state(root / "hard-state")
        except files.DamagedFile as exc:
            notes.append(str(exc))
            hs = None
            suspect = max(suspect, dlog.last_index, 1)
        fresh = hs is None and snap.index == 0 and not salvage.discarded_from and not suspect
        if fresh and not join and dlog.last_index > 0:
            # A crash during bootstrap (hard state not yet written) leaves at most the
            # bootstrap entries: start over. Anything else is state we cannot explain.
            if dlog.last_term <= 1 and dlog.last_index <= len(peers):
                await dlog.reset(1)
            else:
                fresh = False
                suspect = max(suspect, dlog.last_index)
                notes.append("hard state missing beside a non-empty log")
        if fresh and not join:
            entries, hs = bootstrap_log(peers)
            await dlog.append([LogRecord(e.term, e.index, pack_entry(e)) for e in entries])
            await loop.run_in_executor(None, files.save_hard_state, root / "hard-state", hs)
            log.info("bootstrapped a new raft cluster: %s", ", ".join(f"{k}={v}" for k, v in sorted(peers.items())))
        if snap.index > 0:
            f, last = dlog.first_index, dlog.last_index
            if last < snap.index or f > snap.index + 1 or (f <= snap.index and dlog.term_at(snap.index) != snap.term):
                if f > snap.index + 1:
                    suspect = max(suspect, last)
                    notes.append(f"log starts at {f}, after the snapshot at {snap.index}: discarded")
                await dlog.reset(snap.index + 1)
        elif dlog.first_index > 1:
            notes.append(f"log starts at {dlog.first_index} and no snapshot is intact: discarded")
            suspect = max(suspect, dlog.last_index)
            await dlog.reset(1)
        if hs is None:
            hs = HardState(max(dlog.last_term, snap.term), "", 0)
        if hs.commit > dlog.last_index and hs.commit > snap.index:
            suspect = max(suspect, hs.commit)
        marker = files.load_recovering(root / "recovering")
        until = max(marker[0] if marker else 0, suspect)
        if suspect:
            # The marker (written first) now carries the distrust; the hard state keeps only
            # what is here, so a later start (marker deleted by an operator) is consistent.
            reason = "; ".join(notes) or "hard state commit beyond the log"
            await loop.run_in_executor(None, files.save_recovering, root / "recovering", until, reason)
            hs = HardState(hs.term, hs.vote, min(hs.commit, max(dlog.last_index, snap.index)))
            await loop.run_in_executor(None, files.save_hard_state, root / "hard-state", hs)
        storage = DiskRaftStorage(root, dlog, snapshots, snap, snap_path, hs)
        addresses = dict(loaded.addresses) if loaded else {}
        lo, hi = storage.first_index(), storage.last_index() + 1
        while lo < hi:
            page = storage.entries(lo, min(hi, lo + 1024))
            addresses.update(conf_addresses(page))
            lo = page[-1].index + 1
        addresses.update(peers)
        for n in notes:
            log.error("raft storage: %s", n)
        return Opened(storage, loaded.fsm if loaded else MetadataFSM(), addresses, until, notes)
    except BaseException:
        await dlog.close()
        raise

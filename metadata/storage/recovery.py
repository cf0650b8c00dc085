"""Opening a Raft metadata node's durable state: bootstrap, recovery, and distrust.

:func:`open_storage` turns ``<data_dir>/raft`` into a :class:`DiskRaftStorage`, the state
machine restored from the newest valid snapshot, the address book and the node's trust
in its own state, in three steps: find what is on disk (:class:`Found`; salvaging the
log and deleting damaged snapshots on the way), decide (:func:`plan_recovery`, pure: a
:class:`RecoveryPlan`), and carry the plan out.

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
- **Only copy** (``only_copy``: a group whose only voter is this node): no leader could
  ever bring it past such a point, and its log is the only copy of what it acknowledged.
  The log is not salvaged (damage before its tail raises
  :class:`~metadata.storage.log_format.CorruptLogError`, the file untouched) and any
  distrust stops the start (:class:`StorageError`), as for the single node before Raft.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from metadata.fsm.machine import MetadataFSM
from metadata.raft.confchange import ConfChange, ConfChangeType
from metadata.raft.records import Entry, EntryKind, HardState, SnapshotMeta
from metadata.raft.storage import pack_entry
from metadata.storage import files
from metadata.storage.log import DEFAULT_SEGMENT_BYTES, DiskLog, LogRecord
from metadata.storage.raft_storage import DiskRaftStorage
from metadata.storage.salvage import SalvageResult, salvage_log
from metadata.storage.snapshot_store import SnapshotStore
from objstore.durable_io import fsync_dir

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


@dataclass(frozen=True, slots=True)
class Found:
    """What :func:`open_storage` found on disk, after salvaging the log and choosing the
    newest intact snapshot (the input of :func:`plan_recovery`)."""

    peers: int  # how many initial peers were given
    join: bool
    snapshot: SnapshotMeta = SnapshotMeta()  # index 0: no intact snapshot
    log_first: int = 1
    log_last: int = 0
    log_last_term: int = 0
    log_term_at_snapshot: int | None = None  # the log's term at the snapshot index, if it holds it
    hard_state: HardState | None = None  # None: absent or damaged
    hard_state_damage: str = ""  # why the hard state is damaged ("" when intact or absent)
    salvaged_from: int = 0  # first log index salvage discarded (0: none)
    salvage_highest: int = 0  # the highest index seen in what salvage discarded
    marker_until: int = 0  # the recovering marker's index (0: no marker)
    notes: tuple[str, ...] = ()  # what was already repaired while looking (salvage, damaged snapshots)


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    """What :func:`open_storage` does to the durable state before serving, in this order:
    reset the log, bootstrap, record distrust (marker, then the clamped hard state)."""

    reset_log_to: int | None  # reset the log so that its next index is this (None: keep it)
    bootstrap: bool  # append the bootstrap entries and write ``hard_state``
    hard_state: HardState  # the hard state to start from
    recovering_until: int  # 0: the node trusts its state
    write_recovering: bool  # write the marker (``until``, ``reason``) and ``hard_state``
    reason: str
    notes: tuple[str, ...]


def plan_recovery(f: Found) -> RecoveryPlan:
    """Decide bootstrap, log resets and distrust from what was found (pure; rules in the
    module docstring)."""
    notes = list(f.notes)
    suspect = f.salvage_highest if f.salvaged_from else 0  # highest index whose acknowledgement may be lost
    first, last, last_term = f.log_first, f.log_last, f.log_last_term
    snap, hs = f.snapshot, f.hard_state
    if f.hard_state_damage:
        notes.append(f.hard_state_damage)
        suspect = max(suspect, last, 1)
    reset_to: int | None = None
    fresh = hs is None and snap.index == 0 and not f.salvaged_from and not suspect
    if fresh and not f.join and last > 0:
        # A crash during bootstrap (hard state not yet written) leaves at most the
        # bootstrap entries: start over. Anything else is state we cannot explain.
        if last_term <= 1 and last <= f.peers:
            reset_to, first, last, last_term = 1, 1, 0, 0
        else:
            fresh = False
            suspect = max(suspect, last)
            notes.append("hard state missing beside a non-empty log")
    bootstrap = fresh and not f.join
    if bootstrap:
        if f.peers < 1:
            raise StorageError("a new cluster needs at least one peer")
        hs = HardState(1, "", f.peers)
        last, last_term = f.peers, 1
    elif snap.index > 0:
        if last < snap.index or first > snap.index + 1 or (first <= snap.index and f.log_term_at_snapshot != snap.term):
            if first > snap.index + 1:
                suspect = max(suspect, last)
                notes.append(f"log starts at {first}, after the snapshot at {snap.index}: discarded")
            reset_to, first, last, last_term = snap.index + 1, snap.index + 1, snap.index, 0
    elif first > 1:
        notes.append(f"log starts at {first} and no snapshot is intact: discarded")
        suspect = max(suspect, last)
        reset_to, first, last, last_term = 1, 1, 0, 0
    if hs is None:
        hs = HardState(max(last_term, snap.term), "", 0)
    if hs.commit > last and hs.commit > snap.index:
        suspect = max(suspect, hs.commit)
    reason = ""
    if suspect:
        # The marker (written first) carries the distrust; the hard state keeps only what
        # is here, so a later start (marker deleted by an operator) is consistent.
        reason = "; ".join(notes) or "hard state commit beyond the log"
        hs = HardState(hs.term, hs.vote, min(hs.commit, max(last, snap.index)))
    return RecoveryPlan(reset_to, bootstrap, hs, max(f.marker_until, suspect), bool(suspect), reason, tuple(notes))


async def _find(root: Path, peers: int, join: bool, segment_bytes: int, salvage_damage: bool = True
                ) -> tuple[Found, DiskLog, SnapshotStore, "files.LoadedSnapshot | None", Path | None]:
    """Look at ``root``: salvage the log (if ``salvage_damage``), delete damaged snapshots,
    load the newest intact one, open the log and read the hard state and the recovering
    marker."""
    loop = asyncio.get_running_loop()
    notes: list[str] = []
    salvage = SalvageResult()
    if salvage_damage:
        t0 = time.perf_counter()
        salvage = await loop.run_in_executor(None, salvage_log, root / "log")
        log.info("raft storage: log checked in %.2f s", time.perf_counter() - t0)
    if salvage.discarded_from:
        notes.append(f"log damaged ({salvage.detail}); discarded from index {salvage.discarded_from}")
    snapshots = SnapshotStore(root / "snapshots")
    loaded: files.LoadedSnapshot | None = None
    snap_path: Path | None = None
    for fm in snapshots.list():
        try:
            t1 = time.perf_counter()
            if not await loop.run_in_executor(None, files.verify_snapshot_file, snapshots, fm.path, fm.index, fm.term):
                raise files.DamagedFile(f"{fm.path.name} fails its checksum")
            t2 = time.perf_counter()
            loaded = await loop.run_in_executor(None, files.read_snapshot, snapshots, fm.path, fm.index, fm.term)
            snap_path = fm.path
            log.info("raft storage: snapshot %s (%d objects) verified in %.2f s, loaded in %.2f s", fm.path.name,
                     loaded.fsm.object_count(), t2 - t1, time.perf_counter() - t2)
            break
        except (files.DamagedFile, OSError) as exc:
            notes.append(f"snapshot {fm.path.name} damaged ({exc}); deleted")
            fm.path.unlink(missing_ok=True)
    snap = loaded.meta if loaded else SnapshotMeta()
    dlog = await DiskLog.open(root / "log", segment_bytes)
    try:
        hs: HardState | None = None
        damage = ""
        try:
            hs = files.load_hard_state(root / "hard-state")
        except files.DamagedFile as exc:
            damage = str(exc)
        marker = files.load_recovering(root / "recovering")
        at_snap = dlog.term_at(snap.index) if dlog.first_index <= snap.index <= dlog.last_index else None
        found = Found(peers, join, snap, dlog.first_index, dlog.last_index, dlog.last_term, at_snap, hs, damage,
                      salvage.discarded_from, salvage.highest_seen, marker[0] if marker else 0, tuple(notes))
    except BaseException:
        await dlog.close()
        raise
    return found, dlog, snapshots, loaded, snap_path


async def open_storage(data_dir: Path, peers: dict[str, str], join: bool,
                       segment_bytes: int = DEFAULT_SEGMENT_BYTES, only_copy: bool = False) -> Opened:
    """Open (bootstrap, recover) the Raft state in ``data_dir``: find what is on disk, plan
    (:func:`plan_recovery`), carry the plan out; raises StorageError (and CorruptLogError
    when ``only_copy``, see the module docstring)."""
    loop = asyncio.get_running_loop()
    root = data_dir / "raft"
    if not root.exists() and ((data_dir / "log").exists() or (data_dir / "hard-state").exists()):
        raise StorageError(f"{data_dir} holds a single-node metadata log from an earlier version; start it as a "
                           "single node (it is then migrated) or use a fresh data dir for a member of a larger group")
    if not root.exists():
        root.mkdir(parents=True)
        await loop.run_in_executor(None, fsync_dir, data_dir)  # every durable file lives under it
    incoming = root / "incoming"
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir()
    found, dlog, snapshots, loaded, snap_path = await _find(root, len(peers), join, segment_bytes, not only_copy)
    try:
        plan = plan_recovery(found)
        if only_copy and plan.recovering_until:
            raise StorageError(f"{root} is damaged ({plan.reason or 'a recovering marker is present'}) and is the "
                               "only copy of this single node's state: repair it or restore it from a backup")
        if plan.reset_log_to is not None:
            await dlog.reset(plan.reset_log_to)
        if plan.bootstrap:
            entries, _ = bootstrap_log(peers)
            await dlog.append([LogRecord(e.term, e.index, pack_entry(e)) for e in entries])
            await loop.run_in_executor(None, files.save_hard_state, root / "hard-state", plan.hard_state)
            log.info("bootstrapped a new raft cluster: %s", ", ".join(f"{k}={v}" for k, v in sorted(peers.items())))
        if plan.write_recovering:
            await loop.run_in_executor(None, files.save_recovering, root / "recovering", plan.recovering_until,
                                       plan.reason)
            await loop.run_in_executor(None, files.save_hard_state, root / "hard-state", plan.hard_state)
        storage = DiskRaftStorage(root, dlog, snapshots, found.snapshot, snap_path, plan.hard_state)
        # The snapshot's header holds every address known when it was taken, so only the
        # entries after it can name others.
        t0 = time.perf_counter()
        addresses = dict(loaded.addresses) if loaded else {}
        lo, hi = max(storage.first_index(), found.snapshot.index + 1), storage.last_index() + 1
        scanned = max(hi - lo, 0)
        while lo < hi:
            page = storage.entries(lo, min(hi, lo + 1024))
            addresses.update(conf_addresses(page))
            lo = page[-1].index + 1
        for nid, address in peers.items():  # the group's own record wins over a config file's list
            addresses.setdefault(nid, address)
        log.info("raft storage: log %d..%d; member addresses read from its %d entries after the snapshot in %.2f s",
                 storage.first_index(), storage.last_index(), scanned, time.perf_counter() - t0)
        for n in plan.notes:
            log.error("raft storage: %s", n)
        return Opened(storage, loaded.fsm if loaded else MetadataFSM(), addresses, plan.recovering_until,
                      list(plan.notes))
    except BaseException:
        await dlog.close()
        raise

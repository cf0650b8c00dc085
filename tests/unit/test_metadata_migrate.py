"""Migration of a pre-Raft single-node metadata dir into a one-voter Raft group, in process:
the fixture written by the old code, a hand-made old layout with a snapshot, and crashes at
either side of the migration's commit point."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import xxhash

from metadata.api import commands as c
from metadata.api.commands import encode_command
from metadata.fsm.machine import MetadataFSM
from metadata.fsm.snapshot import freeze, frozen_chunks, snapshot_bytes
from metadata.replication.driver import RaftReplicator, RaftSettings, open_one_voter
from metadata.storage import migrate
from metadata.storage.log import DiskLog, LogRecord
from metadata.storage.snapshot_store import SnapshotStore
from objstore.types import ObjectVersion
from tests.unit.test_metadata_log import after_leader_noop

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "upgrade" / "single-node-legacy.tar.gz"
ADDRESS = "127.0.0.1:1"


def legacy_dir(tmp_path: Path) -> tuple[Path, dict]:
    with tarfile.open(FIXTURE) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("data/metadata/") or m.name == "manifest.json"]
        tar.extractall(tmp_path, members=members, filter="data")
    return tmp_path / "data" / "metadata" / "m1", json.loads((tmp_path / "manifest.json").read_text())


async def legacy_state(node_dir: Path, tmp_path: Path) -> bytes:
    """The state the old layout holds, read from a copy (the reader cuts torn tails)."""
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(node_dir, copy)
    fsm, _, _ = await migrate._read_legacy(copy, 1 << 20)
    return snapshot_bytes(fsm)


async def open_node(node_dir: Path) -> RaftReplicator:
    rep = await open_one_voter("m1", node_dir, ADDRESS, settings=RaftSettings(tick_seconds=0.01))
    assert rep.is_leader()
    return rep


async def reopens_with(node_dir: Path, state: bytes) -> None:
    """The node opens (finishing any migration) with ``state``; only ``raft/`` is left."""
    rep = await open_node(node_dir)
    try:
        assert snapshot_bytes(rep.fsm) == after_leader_noop(state)
    finally:
        await rep.close()
    assert sorted(p.name for p in node_dir.iterdir()) == ["raft"]


async def test_the_old_fixture_migrates_with_every_object(tmp_path):
    node_dir, manifest = legacy_dir(tmp_path)
    before = await legacy_state(node_dir, tmp_path)
    assert migrate.has_legacy_layout(node_dir)
    assert await migrate.migrate_single_node(node_dir, "m1", ADDRESS)
    assert sorted(p.name for p in node_dir.iterdir()) == ["raft"]
    assert not migrate.has_legacy_layout(node_dir)
    rep = await open_node(node_dir)
    try:
        assert snapshot_bytes(rep.fsm) == after_leader_noop(before)
        for ref in manifest["objects"]:
            bucket, _, rest = ref.partition("/")
            key, _, version = rest.partition("?versionId=")
            assert rep.fsm.get_object(bucket, key, version or None).key == key
        assert rep.status()["members"] == {"m1": {"address": ADDRESS, "voter": True}}
        out = await rep.propose(c.CreateBucket("after", "alice", "replica:2", 1.0))
        assert out.error is None
    finally:
        await rep.close()
    assert not await migrate.migrate_single_node(node_dir, "m1", ADDRESS)  # nothing left to do


async def test_a_crash_before_the_commit_point_migrates_again(tmp_path, monkeypatch):
    node_dir, _ = legacy_dir(tmp_path)
    before = await legacy_state(node_dir, tmp_path)

    def crash(self, target):
        raise OSError("crash before the rename")

    monkeypatch.setattr(Path, "rename", crash)
    with pytest.raises(OSError):
        await migrate.migrate_single_node(node_dir, "m1", ADDRESS)
    monkeypatch.undo()
    assert (node_dir / "raft.migrating").exists() and migrate.has_legacy_layout(node_dir)
    await reopens_with(node_dir, before)


async def test_a_crash_after_the_commit_point_only_cleans_up(tmp_path, monkeypatch):
    node_dir, _ = legacy_dir(tmp_path)
    before = await legacy_state(node_dir, tmp_path)

    def crash(data_dir):
        raise OSError("crash before the old files are gone")

    monkeypatch.setattr(migrate, "_remove_legacy", crash)
    with pytest.raises(OSError):
        await migrate.migrate_single_node(node_dir, "m1", ADDRESS)
    monkeypatch.undo()
    assert (node_dir / "raft").exists() and (node_dir / "log").exists()
    await reopens_with(node_dir, before)


def ver(key: str) -> ObjectVersion:
    return ObjectVersion("b", key, "v1", 3, "0" * 32, 1.0, placement=("n1",))


async def test_an_old_snapshot_plus_log_tail_migrates(tmp_path):
    """The old layout written by hand: a bare state-machine snapshot at 3, entries 4..6."""
    node_dir = tmp_path / "m1"
    cmds = [c.CreateBucket("b", "alice", "replica:3", 1.0)] + [c.PutObject(ver(f"k{i}")) for i in range(5)]
    fsm = MetadataFSM()
    for i, cmd in enumerate(cmds[:3], start=1):
        fsm.apply(i, cmd)
    SnapshotStore(node_dir / "snapshots").write(3, 2, frozen_chunks(freeze(fsm)))
    dlog = await DiskLog.open(node_dir / "log")
    await dlog.append([LogRecord(2, i, encode_command(cmd)) for i, cmd in enumerate(cmds, start=1)])
    await dlog.close()
    (node_dir / "hard-state").write_text(json.dumps(
        {"v": 1, "term": 5, "vote": "m1", "xxh64": xxhash.xxh64(b"5\nm1").hexdigest()}))
    for i, cmd in enumerate(cmds[3:], start=4):
        fsm.apply(i, cmd)
    rep = await open_node(node_dir)
    try:
        assert rep.node.term > 5
        assert snapshot_bytes(rep.fsm) == after_leader_noop(snapshot_bytes(fsm))
        assert rep.fsm.counts()["objects"] == 5
    finally:
        await rep.close()


async def test_a_group_of_several_refuses_an_old_single_node_dir(tmp_path):
    from metadata.storage.recovery import StorageError

    node_dir, _ = legacy_dir(tmp_path)
    with pytest.raises(StorageError, match="single-node"):
        await RaftReplicator.open("m1", node_dir, "", {"m1": ADDRESS, "m2": "127.0.0.1:2"}, False, ADDRESS)


async def test_a_retried_command_is_still_deduplicated_after_the_migration(tmp_path):
    """The sessions replayed from the old log move into the Raft snapshot: a client retrying
    a command acknowledged before the upgrade gets the same answer, applied once."""
    node_dir = tmp_path / "m1"
    cmds = [c.CreateBucket("b", "alice", "replica:3", 1.0), c.PutObject(ver("k"), client_id="g", seq=1, ack=1)]
    fsm = MetadataFSM()
    outs = [fsm.apply(i, cmd) for i, cmd in enumerate(cmds, start=1)]
    dlog = await DiskLog.open(node_dir / "log")
    await dlog.append([LogRecord(1, i, encode_command(cmd)) for i, cmd in enumerate(cmds, start=1)])
    await dlog.close()
    rep = await open_node(node_dir)
    try:
        assert rep.storage.snapshot_meta.index == 2 and rep.fsm.applied_index == 3  # 3: the leader's no-op
        again = await rep.propose(c.PutObject(ver("k"), client_id="g", seq=1, ack=1))
        assert again == outs[1] and rep.fsm.applied_index == 4
        assert rep.fsm.counts()["objects"] == 1
    finally:
        await rep.close()

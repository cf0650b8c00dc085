"""A Raft member's durable state, in process: salvage of a damaged log, distrust after
damage (no votes), snapshots with compaction, and recovery of it all on reopen."""
from __future__ import annotations

from pathlib import Path

from metadata.storage import log_format as fmt
from metadata.api.commands import PutCredential, encode_command
from metadata.storage.log import DiskLog, LogRecord
from metadata.raft import Entry, Message, MessageType
from metadata.storage import files
from metadata.replication.driver import RaftReplicator, RaftSettings
from metadata.storage.recovery import open_storage
from metadata.storage.salvage import salvage_log
from objstore.types import Credential

SETTINGS = RaftSettings(tick_seconds=0.01, snapshot_every=40, segment_bytes=2048)


async def _log_with(directory: Path, n: int, segment_bytes: int = 1024) -> None:
    dlog = await DiskLog.open(directory, segment_bytes)
    for i in range(1, n + 1):
        await dlog.append([LogRecord(1, i, b"\x00" + b"x" * 60)])
    await dlog.close()


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_salvage_cuts_the_log_at_the_first_damaged_record(tmp_path):
    await _log_with(tmp_path, 100)
    segs = sorted(tmp_path.iterdir())
    assert len(segs) > 3
    second = segs[1]
    first_index = fmt.parse_segment_name(second.name)
    _flip(second, fmt.SEGMENT_HEADER.size + fmt.RECORD_HEADER.size + 5)  # payload of its first record
    result = salvage_log(tmp_path)
    assert result.discarded_from == first_index and result.highest_seen == 100
    assert sorted(tmp_path.iterdir()) == segs[:1]  # the damaged segment and all later ones are gone
    dlog = await DiskLog.open(tmp_path)
    assert dlog.last_index == first_index - 1
    await dlog.close()


async def test_a_torn_tail_is_not_damage(tmp_path):
    await _log_with(tmp_path, 20)
    last = sorted(tmp_path.iterdir())[-1]
    last.write_bytes(last.read_bytes()[:-7])
    assert salvage_log(tmp_path).discarded_from == 0


async def test_a_member_with_a_damaged_log_distrusts_itself_and_refuses_votes(tmp_path):
    peers = {"m1": "127.0.0.1:1", "m2": "127.0.0.1:2", "m3": "127.0.0.1:3"}
    opened = await open_storage(tmp_path, peers, join=False, segment_bytes=1024)
    for i in range(4, 200):
        await opened.storage.dlog.append([LogRecord(2, i, b"\x02" + b"x" * 40)])
    await opened.storage.close()
    log_dir = tmp_path / "raft" / "log"
    _flip(sorted(log_dir.iterdir())[1], fmt.SEGMENT_HEADER.size + 3)

    rep = await RaftReplicator.open("m1", tmp_path, "secret", peers, False, peers["m1"], SETTINGS)
    try:
        assert rep.recovering_until >= 199 and files.load_recovering(tmp_path / "raft" / "recovering")
        term = rep.node.term
        for kind in (MessageType.PRE_VOTE, MessageType.VOTE):
            rep.step_messages([Message(kind, "m1", "m2", term + 5, index=10**6, log_term=term + 5)])
        assert rep.node.term == term and rep.node.vote == ""  # no say in elections yet
    finally:
        await rep.close()


async def test_snapshots_compact_the_log_and_everything_comes_back_on_reopen(tmp_path):
    peers = {"m1": "127.0.0.1:1"}
    rep = await RaftReplicator.open("m1", tmp_path, "secret", peers, False, peers["m1"], SETTINGS)
    try:
        assert await rep.wait_until(rep.is_leader, 5)  # the only voter elects itself at once
        for i in range(150):
            await rep.propose(PutCredential(Credential(f"k{i}", f"s{i}", "owner")))
        assert await rep.wait_until(lambda: rep.storage.snapshot_meta.index >= 120, 10)
        assert await rep.wait_until(lambda: rep.storage.first_index() > 1, 10)
        applied = rep.fsm.applied_index
    finally:
        await rep.close()
    rep = await RaftReplicator.open("m1", tmp_path, "secret", peers, False, peers["m1"], SETTINGS)
    try:
        assert await rep.wait_until(lambda: rep.is_leader() and rep.fsm.applied_index >= applied, 10)
        creds = await rep.read(lambda f: {c.access_key: c.secret_key for c in f.list_credentials()})
        assert creds == {f"k{i}": f"s{i}" for i in range(150)}
        st = rep.status()
        assert st["last_snapshot_index"] >= 120 and st["log_first_index"] > 1 and st["recovering_until"] == 0
    finally:
        await rep.close()


async def test_a_follower_answers_a_batch_in_the_response_once_the_entries_are_durable(tmp_path):
    peers = {"m1": "127.0.0.1:1", "m2": "127.0.0.1:2", "m3": "127.0.0.1:3"}
    rep = await RaftReplicator.open("m1", tmp_path, "secret", peers, False, peers["m1"], SETTINGS)
    try:
        last = rep.node.log.last_index()
        term = rep.node.term + 5
        entry = Entry(last + 1, term, b"")
        app = Message(MessageType.APP, "m1", "m2", term, index=last, log_term=rep.storage.term(last),
                      entries=(entry,), commit=last)
        replies = await rep.step_and_reply("m2", [app])
        assert [(m.type, m.to, m.index, m.reject) for m in replies] == [(MessageType.APP_RESP, "m2", last + 1, False)]
        assert rep.storage.dlog.durable_index >= last + 1  # acknowledged only once on disk
        assert rep.node.lead == "m2"
        beat = Message(MessageType.HEARTBEAT, "m1", "m2", term, commit=last, context=b"r1")
        replies = await rep.step_and_reply("m2", [beat])
        assert [(m.type, m.context) for m in replies] == [(MessageType.HEARTBEAT_RESP, b"r1")]
        peer = rep.transport._peers.get("m2")
        assert peer is None or not peer.queue  # answered in the response, not sent again
    finally:
        await rep.close()


async def test_a_follower_answers_before_it_applies_the_entries_the_batch_committed(tmp_path):
    peers = {"m1": "127.0.0.1:1", "m2": "127.0.0.1:2", "m3": "127.0.0.1:3"}
    rep = await RaftReplicator.open("m1", tmp_path, "secret", peers, False, peers["m1"], SETTINGS)
    try:
        last = rep.node.log.last_index()
        term = rep.node.term + 5
        entry = Entry(last + 1, term, encode_command(PutCredential(Credential("ak", "sk", "owner"))))
        app = Message(MessageType.APP, "m1", "m2", term, index=last, log_term=rep.storage.term(last),
                      entries=(entry,), commit=last + 1)
        replies = await rep.step_and_reply("m2", [app])
        assert [(m.type, m.index) for m in replies] == [(MessageType.APP_RESP, last + 1)]
        assert rep.storage.dlog.durable_index >= last + 1
        # The acknowledgement did not wait for the apply of the entry it committed ...
        assert rep.fsm.applied_index < last + 1
        # ... which follows.
        assert await rep.wait_until(lambda: rep.fsm.applied_index == last + 1, 5)
        assert rep.fsm.get_credential("ak") is not None
    finally:
        await rep.close()

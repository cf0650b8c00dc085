"""Every on-disk and on-wire format keeps its version number, and a reader refuses a newer
version with a clear message (FormatTooNew) instead of taking it for damage: a storage node
does not cut a segment's tail or set a blob file aside, a metadata node does not distrust its
hard state, snapshot or log, and a newer command or Raft batch is refused by name."""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from metadata.api.commands import PutCredential, command_from_dict, command_to_dict
from metadata.fsm.machine import MetadataFSM
from metadata.fsm.snapshot import restore, snapshot_bytes
from metadata.replication.transport import decode_batch
from metadata.storage.files import load_hard_state, save_hard_state
from metadata.storage.log_format import scan_segment, segment_header
from metadata.raft.storage import HardState
from objstore.errors import FormatTooNew, InvalidArgument
from objstore.formats import check_version, numbered_magic_version
from objstore.checksum import pack_u64, xxh64
from objstore.node.blob import FIXED_SIZE
from objstore.types import Credential
from tests.unit.test_store import OPTS, opened, put


def test_check_version_refuses_only_newer_integers():
    check_version("x", 1, 1)
    check_version("x", 0, 1)
    check_version("x", "2", 1)  # not a version number: left to the reader's own checks
    check_version("x", True, 0)
    with pytest.raises(FormatTooNew, match=r"a blob \(here\) is in format version 3, but this objstore reads versions "
                                           r"up to 2: it was written by a newer objstore"):
        check_version("a blob", 3, 2, "here")
    assert numbered_magic_version(b"OSMLOG07", b"OSMLOG") == 7
    assert numbered_magic_version(b"OSMLOGxx", b"OSMLOG") is None


def _bump_version(path: Path, version: int, reseal: bool = True) -> None:
    """Set the format version of the blob record at the start of ``path``; with ``reseal``
    its header checksum is recomputed, as a newer objstore would have written it."""
    raw = bytearray(path.read_bytes())
    raw[4:6] = struct.pack("<H", version)
    if reseal:
        (body_len,) = struct.unpack_from("<I", raw, 8)
        total = FIXED_SIZE + body_len + 8
        raw[total - 8:total] = pack_u64(xxh64(bytes(raw[:total - 8])))
    path.write_bytes(bytes(raw))


async def test_a_storage_node_refuses_a_newer_blob_record_and_keeps_the_segment_whole(tmp_path):
    store = await opened(tmp_path)
    await put(store, "v1", b"small")
    await store.close()
    (seg,) = [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size > FIXED_SIZE
              and p.read_bytes().startswith(b"OBJB")]
    size = seg.stat().st_size
    _bump_version(seg, 2)
    with pytest.raises(FormatTooNew, match="a blob record is in format version 2"):
        await opened(tmp_path)
    assert seg.stat().st_size == size  # not cut as a torn tail
    # A version byte flipped by damage (the header checksum fails) is still damage.
    _bump_version(seg, 3, reseal=False)
    store = await opened(tmp_path)
    await store.close()


async def test_a_storage_node_refuses_a_newer_large_blob_file_and_does_not_set_it_aside(tmp_path):
    store = await opened(tmp_path)
    await put(store, "big", os.urandom(OPTS.small_threshold * 3))
    await store.close()
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes()[:4] == b"OBJB"
             and p.stat().st_size > OPTS.small_threshold]
    assert files
    _bump_version(files[0], 9)
    with pytest.raises(FormatTooNew):
        await opened(tmp_path)
    assert files[0].exists() and not list(tmp_path.rglob("*.bad"))


def test_metadata_refuses_newer_hard_state_snapshot_and_log(tmp_path):
    hs = tmp_path / "hard-state"
    save_hard_state(hs, HardState(3, "m1", 10))
    d = json.loads(hs.read_text())
    d["v"] = 2
    hs.write_text(json.dumps(d))
    with pytest.raises(FormatTooNew, match="raft hard state"):
        load_hard_state(hs)
    lines = snapshot_bytes(MetadataFSM()).splitlines(keepends=True)
    head = json.loads(lines[0])
    head["v"] += 1
    with pytest.raises(FormatTooNew, match="metadata snapshot"):
        restore([json.dumps(head).encode() + b"\n", *lines[1:]])
    data = segment_header(1).replace(b"OSMLOG01", b"OSMLOG02")
    with pytest.raises(FormatTooNew, match="raft log segment"):
        scan_segment(data, 1, is_last=True, name="seg-1")


def test_newer_commands_and_raft_batches_are_refused_by_name():
    d = command_to_dict(PutCredential(Credential("AK", "SK", owner="o", display_name="o")))
    d["v"] += 1
    with pytest.raises(InvalidArgument, match="metadata command is in format version 2.*newer objstore"):
        command_from_dict(d)
    with pytest.raises(InvalidArgument, match="raft message batch is in format version 2"):
        decode_batch({"v": 2, "from": "m1", "messages": []}, "m2")

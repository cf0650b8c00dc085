"""``objstore object info``'s pure parts: the rows a placement gives, and the table."""
from __future__ import annotations

from objstore.erasure.data_layout import DataLayout
from objstore.types import ClusterMap, NodeInfo
from ops.cli.object_info import blob_rows, render

CMAP = ClusterMap(3, tuple(NodeInfo(f"s{i}", f"127.0.0.1:{7000 + i}", zone=f"zone-{'abc'[i % 3]}") for i in range(1, 7)))


def test_shards_are_numbered_by_position_and_replicas_are_all_zero():
    ec = blob_rows(DataLayout.parse("ec:4+2;stripe=1048576"), ("s3", "s1", "", "s4", "s5", "s6"), CMAP)
    assert [r["index"] for r in ec] == [0, 1, 2, 3, 4, 5]
    assert ec[0] == {"index": 0, "node_id": "s3", "address": "127.0.0.1:7003", "zone": "zone-a"}
    assert ec[2] == {"index": 2, "node_id": "", "address": "", "zone": ""}  # a shard no node stored
    replicas = blob_rows(DataLayout.parse("replica:3"), ("s2", "s9", "s4"), CMAP)
    assert [r["index"] for r in replicas] == [0, 0, 0]
    assert replicas[1]["address"] == ""  # a node no longer in the map


def test_the_table_has_a_part_column_only_for_multipart_objects():
    base = {"bucket": "b", "key": "k", "version_id": "null", "internal_version_id": "v1", "policy": "replica:3",
            "size": 5, "etag": "e", "ring_epoch": 3, "checksums": {"crc32": "AAAAAA=="}, "last_modified": 1.0}
    row = {"index": 0, "node_id": "s1", "address": "127.0.0.1:7001", "zone": "zone-b", "has_blob": "yes"}
    single = render({**base, "parts": [{"part": None, "blobs": [row]}]})
    assert "PART" not in single and "crc32 AAAAAA==" in single
    assert single.splitlines()[-1].split() == ["0", "s1", "127.0.0.1:7001", "zone-b", "yes"]
    multi = render({**base, "parts": [{"part": 1, "blobs": [row]}, {"part": 2, "blobs": [{**row, "has_blob": "no"}]}]})
    assert multi.splitlines()[-1].split() == ["2", "0", "s1", "127.0.0.1:7001", "zone-b", "no"]

"""`objstore up` keeps its metadata group's addresses across restarts of one data dir."""
from __future__ import annotations

import socket

import pytest

from objstore.cluster.launcher import LaunchError, metadata_addresses


def test_metadata_addresses_are_chosen_once_and_kept(tmp_path):
    first = metadata_addresses(tmp_path, "127.0.0.1", 3)
    assert len(set(first)) == 3 and all(a.startswith("127.0.0.1:") for a in first)
    assert metadata_addresses(tmp_path, "127.0.0.1", 3) == first
    with pytest.raises(LaunchError, match="--metadata-nodes 3"):
        metadata_addresses(tmp_path, "127.0.0.1", 1)
    with pytest.raises(LaunchError, match="--host 127.0.0.1"):
        metadata_addresses(tmp_path, "127.0.0.2", 3)


def test_a_kept_port_in_use_fails_clearly(tmp_path):
    addrs = metadata_addresses(tmp_path, "127.0.0.1", 3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", int(addrs[1].rsplit(":", 1)[1])))
        s.listen()
        with pytest.raises(LaunchError, match=f"m2 must keep its address {addrs[1]}"):
            metadata_addresses(tmp_path, "127.0.0.1", 3)


def test_a_single_node_data_dir_from_before_raft_is_refused_for_a_group(tmp_path):
    (tmp_path / "metadata" / "m1" / "log").mkdir(parents=True)
    with pytest.raises(LaunchError, match="--metadata-nodes 1"):
        metadata_addresses(tmp_path, "127.0.0.1", 3)
    assert len(metadata_addresses(tmp_path, "127.0.0.1", 1)) == 1

"""The space and stall settings reach the processes that use them, and the gateway's
topology suspects full nodes longer and finds them a handoff."""
from __future__ import annotations

import argparse
import dataclasses
import shutil

import pytest

from gateway.cli_args import add_arguments as add_gateway_arguments
from gateway.cli_args import config_from_args as gateway_config
from gateway.datapath.fanout import FULL_SUSPECT_SECONDS
from gateway.topology import SUSPECT_SECONDS, Topology
from metadata.liveness import reserve_bytes, space_state
from objstore.cluster.launcher import Cluster, LaunchError, UpOptions, space_warning
from objstore.errors import InsufficientReplicas, InvalidArgument
from objstore.node.cli_args import add_arguments as add_storage_arguments
from objstore.node.client import DEFAULT_TIMEOUT, node_timeout
from objstore.node.cli_args import config_from_args as storage_config
from objstore.ring import build_ring
from objstore.space import default_reserve, full_below
from objstore.types import ClusterMap, NodeInfo
import ops.cli.services
from ops.cli.main import build_parser


def parse(add, argv: list[str]) -> argparse.Namespace:  # noqa: ANN001
    p = argparse.ArgumentParser()
    add(p)
    return p.parse_args(argv)


def test_storage_flags_set_the_capacity_and_the_reserve():
    base = ["--node-id", "s1", "--data-dir", "/tmp/x", "--secret", "s"]
    cfg = storage_config(parse(add_storage_arguments, [*base, "--capacity-bytes", "8388608", "--reserve-bytes", "0"]))
    assert (cfg.capacity_bytes, cfg.reserve_bytes) == (8388608, 0)
    default = storage_config(parse(add_storage_arguments, base))
    assert (default.capacity_bytes, default.reserve_bytes) == (0, -1)  # the filesystem; 5% up to 1 GiB
    with pytest.raises(InvalidArgument):
        storage_config(parse(add_storage_arguments, [*base, "--reserve-bytes", "-5"]))


def test_gateway_flags_set_the_stall_bounds():
    base = ["--id", "gw1", "--metadata", "127.0.0.1:1", "--secret", "s"]
    cfg = gateway_config(parse(add_gateway_arguments, [*base, "--straggler-timeout", "0.5",
                                                       "--read-stall-timeout", "1.5", "--suspect-timeout", "0.25"]))
    assert (cfg.straggler_timeout_seconds, cfg.read_stall_seconds, cfg.suspect_seconds) == (0.5, 1.5, 0.25)
    default = gateway_config(parse(add_gateway_arguments, base))
    assert (default.straggler_timeout_seconds, default.read_stall_seconds) == (2.0, 2.0)
    assert default.suspect_seconds == SUSPECT_SECONDS == 5.0
    for bad in (["--straggler-timeout", "0"], ["--suspect-timeout", "0"]):
        with pytest.raises(InvalidArgument):
            gateway_config(parse(add_gateway_arguments, [*base, *bad]))


def test_gateway_storage_timeout_flag_sets_how_long_a_silent_node_is_waited_on():
    base = ["--id", "gw1", "--metadata", "127.0.0.1:1", "--secret", "s"]
    assert gateway_config(parse(add_gateway_arguments, [*base, "--storage-timeout", "8"])).storage_timeout_seconds == 8
    assert gateway_config(parse(add_gateway_arguments, base)).storage_timeout_seconds == 30.0
    assert node_timeout(8).sock_read == 8 and node_timeout(8).connect == DEFAULT_TIMEOUT.connect
    with pytest.raises(InvalidArgument):
        gateway_config(parse(add_gateway_arguments, [*base, "--storage-timeout", "0"]))


def test_objstore_up_passes_the_storage_capacity_and_the_stall_bounds_to_its_children(tmp_path, monkeypatch):
    args = build_parser().parse_args(["up", "--data-dir", str(tmp_path / "d"), "--storage-nodes", "3",
                                      "--metadata-nodes", "1", "--storage-capacity", "1000000",
                                      "--straggler-timeout", "1", "--read-stall-timeout", "3",
                                      "--suspect-timeout", "0.5"])
    seen = {}
    monkeypatch.setattr(ops.cli.services, "run_up", lambda opts: seen.setdefault("opts", opts) and 0)
    args.func(args)
    cluster = Cluster(seen["opts"])
    cluster.plan()
    storage = [c.argv for c in cluster.children if c.role == "storage"]
    gateway = next(c.argv for c in cluster.children if c.role == "gateway")
    assert len(storage) == 3 and all(a[a.index("--capacity-bytes") + 1] == "1000000" for a in storage)
    assert gateway[gateway.index("--straggler-timeout") + 1] == "1.0"
    assert gateway[gateway.index("--read-stall-timeout") + 1] == "3.0"
    assert gateway[gateway.index("--suspect-timeout") + 1] == "0.5"


def four_nodes() -> ClusterMap:
    return ClusterMap(1, tuple(NodeInfo(f"s{i}", f"127.0.0.1:{7000 + i}", zone=f"z{i % 2}") for i in range(1, 5)))


def test_a_full_node_is_suspected_longer_and_a_handoff_skips_used_and_suspected_nodes():
    now = [100.0]
    topo = Topology(lambda: None, clock=lambda: now[0])  # type: ignore[arg-type, return-value]
    topo.map = four_nodes()
    topo.ring = build_ring(topo.map)
    first3 = topo.ring.locate("b", "k", 3)
    (fourth,) = set(topo.ring.locate("b", "k", 4)) - set(first3)
    assert topo.handoff("b", "k", 3, first3).node_id == fourth
    topo.suspect(fourth, FULL_SUSPECT_SECONDS)
    topo.suspect(fourth)  # a shorter suspicion never shortens a longer one
    assert topo.handoff("b", "k", 3, first3) is None
    now[0] += SUSPECT_SECONDS + 1
    assert topo.is_suspect(fourth)
    now[0] += FULL_SUSPECT_SECONDS
    assert not topo.is_suspect(fourth)
    assert topo.handoff("b", "k", 3, {*first3, fourth}) is None


def test_a_failed_node_is_suspected_for_the_topologys_suspect_seconds():
    now = [100.0]
    topo = Topology(lambda: None, clock=lambda: now[0], suspect_seconds=0.5)  # type: ignore[arg-type, return-value]
    topo.suspect("s1")
    now[0] += 0.4
    assert topo.is_suspect("s1")
    now[0] += 0.2
    assert not topo.is_suspect("s1")


def test_objstore_up_passes_the_storage_reserve_to_every_storage_node(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(ops.cli.services, "run_up", lambda opts: seen.setdefault("opts", opts) and 0)
    args = build_parser().parse_args(["up", "--data-dir", str(tmp_path / "d"), "--storage-nodes", "3",
                                      "--metadata-nodes", "1", "--storage-reserve", "67108864"])
    args.func(args)
    cluster = Cluster(seen["opts"])
    cluster.plan()
    storage = [c.argv for c in cluster.children if c.role == "storage"]
    assert len(storage) == 3 and all(a[a.index("--reserve-bytes") + 1] == "67108864" for a in storage)
    seen.clear()
    args = build_parser().parse_args(["up", "--data-dir", str(tmp_path / "d"), "--metadata-nodes", "1"])
    args.func(args)
    cluster = Cluster(seen["opts"])
    cluster.plan()
    assert not any("--reserve-bytes" in c.argv for c in cluster.children)  # the node's own default


def test_objstore_up_names_a_disk_too_full_for_its_storage_nodes(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    # A reserve of half the free space: full below twice that, i.e. right now.
    warning = space_warning(tmp_path, UpOptions(data_dir=str(tmp_path), storage_reserve=free // 2 + 1024**2))
    assert "counts as full" in warning and "--storage-reserve" in warning
    assert space_warning(tmp_path, UpOptions(data_dir=str(tmp_path), storage_reserve=0)) == ""
    with pytest.raises(LaunchError, match="--storage-reserve"):
        Cluster(UpOptions(data_dir=str(tmp_path / "d"), storage_reserve=-1)).validate()


def test_the_default_reserve_and_the_full_threshold_agree_between_nodes_and_the_leader():
    assert default_reserve(100 * 1024**3) == 1024**3 and default_reserve(10 * 1024**2) == 512 * 1024
    stats = {"capacity_bytes": 100 * 1024**3, "free_bytes": 2 * 1024**3 - 1}
    assert reserve_bytes(stats) == default_reserve(100 * 1024**3)
    assert space_state(stats, "up") == "full" and full_below(1024**3) == 2 * 1024**3
    assert space_state({**stats, "free_bytes": 2 * 1024**3}, "up") == "up"


async def test_a_write_when_every_node_is_full_says_so():
    topo = Topology(lambda: None)  # type: ignore[arg-type, return-value]
    full = four_nodes()
    topo.adopt(ClusterMap(full.epoch, tuple(dataclasses.replace(n, state="full") for n in full.nodes)))
    with pytest.raises(InsufficientReplicas, match="every storage node is full"):
        await topo.place("b", "k", 3)
    topo.adopt(ClusterMap(full.epoch + 1, (full.nodes[0], *topo.map.nodes[1:])))
    assert [n.node_id for n in await topo.place("b", "k", 3)] == [full.nodes[0].node_id]

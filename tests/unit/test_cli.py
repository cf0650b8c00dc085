"""The `objstore` command's plumbing: service flags, finding the cluster, the output layer."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

import gateway.cli_args
import metadata.cli_args
import objstore.node.cli_args
from metadata.__main__ import parse_args as metadata_parse_args
from objstore.errors import InvalidArgument
from ops.cli import build_parser
from ops.cli.main import COMMANDS, METADATA_ADMIN
from ops.cli.main import main as objstore_main
from ops.cli.cluster import find_cluster
from ops.cli.metadata_admin import build_parser as metadata_admin_parser
from ops.cli.output import USAGE, CommandError, human_size, table
from tests.cluster_harness import ROOT


def _parse(flags_module, *argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    flags_module.add_arguments(p)
    return p.parse_args(list(argv))


def test_each_service_builds_its_config_from_its_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("OBJSTORE_CLUSTER_SECRET", "from-env")
    s = objstore.node.cli_args.config_from_args(_parse(
        objstore.node.cli_args, "--node-id", "s1", "--data-dir", "/d", "--port", "7001", "--metadata", "a:1, b:2",
        "--weight", "2"))
    assert (s.node_id, s.port, s.secret, s.metadata, s.weight) == ("s1", 7001, "from-env", ("a:1", "b:2"), 2.0)
    m = metadata.cli_args.config_from_args(_parse(
        metadata.cli_args, "--node-id", "m1", "--data-dir", "/d", "--secret", "S", "--peers", "m1=h:1,m2=h:2",
        "--tick-ms", "20", "--election-ticks", "10", "--join"))
    assert (m.secret, m.peers, m.tick_ms, m.election_ticks, m.join) == ("S", ("m1=h:1", "m2=h:2"), 20, 10, True)
    cfg = tmp_path / "gw.json"
    cfg.write_text(json.dumps({"gateway_id": "gw1", "metadata": ["a:1"], "port": 9100}))
    g = gateway.cli_args.config_from_args(_parse(gateway.cli_args, "--config", str(cfg), "--port", "9200"))
    assert (g.gateway_id, g.metadata, g.port, g.secret) == ("gw1", ("a:1",), 9200, "from-env")
    with pytest.raises(InvalidArgument, match="--node-id"):
        objstore.node.cli_args.config_from_args(_parse(objstore.node.cli_args, "--data-dir", "/d"))


def test_objstore_metadata_and_python_m_metadata_take_the_same_flags():
    argv = ["--node-id", "m1", "--data-dir", "/d", "--secret", "S", "--peers", "m1=h:1", "--heartbeat-ticks", "3",
            "--log-segment-bytes", "4096", "--enable-fault-injection"]
    via_objstore = metadata.cli_args.config_from_args(build_parser().parse_args(["metadata", *argv]))
    via_module, level = metadata_parse_args(argv)
    assert via_objstore == via_module and level == "INFO"


def test_the_command_lists_every_subcommand_and_admin_commands_take_json():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"up", "storage", "metadata", "gateway", "status", "bench", "bench-metadata", "key", "keys"} <= set(
        sub.choices)
    assert parser.parse_args(["status", "--json"]).json
    for action in (["create", "NAME"], ["list"], ["delete", "AK"]):
        assert parser.parse_args(["key", *action, "--json"]).json
    for action in (["status"], ["add", "m4=h:1"], ["remove", "m4"], ["transfer-leader", "m4"]):
        assert metadata_admin_parser().parse_args([*action, "--json"]).json


def test_metadata_admin_actions_are_the_ones_main_sends_to_it():
    sub = next(a for a in metadata_admin_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(METADATA_ADMIN)


@pytest.mark.parametrize("role", ["storage", "metadata", "gateway"])
def test_a_bad_service_setting_is_a_usage_error_naming_the_service(role, capsys, monkeypatch):
    monkeypatch.delenv("OBJSTORE_CLUSTER_SECRET", raising=False)
    id_flag = "--id" if role == "gateway" else "--node-id"
    assert objstore_main([role, id_flag, "x1", "--port", "99999"]) == USAGE
    assert capsys.readouterr().err.startswith(f"objstore {role}: ")


# A subcommand imports its own modules only: what each must not import.
_UNUSED = {
    "storage": ("gateway.app", "metadata.app", "metadata.api.client", "ops.bench", "ops.cli.status"),
    "gateway": ("metadata.app", "objstore.node.app", "ops.bench", "ops.cli.status"),
    "status": ("gateway.app", "metadata.app", "objstore.node.app", "ops.bench", "ops.bench_metadata",
               "ops.cli.services", "boto3"),
}


@pytest.mark.parametrize("command", sorted(_UNUSED))
def test_a_subcommand_imports_only_its_own_modules(command):
    probe = ("import sys\n"
             "from ops.cli.main import build_parser\n"
             f"build_parser({command!r})\n"
             f"print(sorted(m for m in {_UNUSED[command]!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_help_and_an_unknown_command_know_every_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        objstore_main(["--help"])
    assert e.value.code == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in COMMANDS)
    with pytest.raises(SystemExit) as e:
        objstore_main(["bogus"])
    assert e.value.code == USAGE
    assert "rebalance" in capsys.readouterr().err  # the choices it offers


def _cluster_args(data_dir, metadata=None, secret=None) -> argparse.Namespace:
    return argparse.Namespace(data_dir=str(data_dir), metadata=metadata, secret=secret)


def test_find_cluster_from_flags_env_or_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("OBJSTORE_CLUSTER_SECRET", raising=False)
    ref = find_cluster(_cluster_args(tmp_path, " a:1, b:2 ", "S"))
    assert ref.metadata == ("a:1", "b:2") and ref.secret == "S"
    (tmp_path / "cluster.json").write_text(json.dumps({"processes": [
        {"role": "metadata", "address": "m:1"}, {"role": "storage", "address": "s:1"}]}))
    (tmp_path / "credentials.json").write_text(json.dumps({"cluster_secret": "from-file"}))
    ref = find_cluster(_cluster_args(tmp_path))
    assert ref.metadata == ("m:1",) and ref.secret == "from-file"
    monkeypatch.setenv("OBJSTORE_CLUSTER_SECRET", "from-env")
    assert find_cluster(_cluster_args(tmp_path)).secret == "from-env"
    with pytest.raises(CommandError, match="no cluster found") as e:
        find_cluster(_cluster_args(tmp_path / "missing"))
    assert e.value.code == USAGE


def test_tables_align_and_sizes_read_well():
    assert table([("A", "LONG HEADER"), ("value", "x")]).splitlines() == ["A      LONG HEADER", "value  x"]
    assert [human_size(n) for n in (None, 512, 1536, 5 << 30)] == ["-", "512 B", "1.5 KiB", "5.0 GiB"]


def test_liveness_flags_reach_the_metadata_and_storage_nodes_that_up_starts(tmp_path, monkeypatch):
    from objstore.cluster.launcher import Cluster, UpOptions
    from ops.cli import services

    m = metadata.cli_args.config_from_args(_parse(
        metadata.cli_args, "--node-id", "m1", "--data-dir", "/d", "--secret", "S", "--node-timeout", "2",
        "--down-after", "30"))
    assert (m.node_timeout, m.down_after) == (2.0, 30.0)
    s = objstore.node.cli_args.config_from_args(_parse(
        objstore.node.cli_args, "--node-id", "s1", "--data-dir", "/d", "--secret", "S", "--heartbeat-interval", "0.5"))
    assert s.heartbeat_interval == 0.5
    with pytest.raises(InvalidArgument):
        metadata.cli_args.config_from_args(_parse(
            metadata.cli_args, "--node-id", "m1", "--data-dir", "/d", "--secret", "S", "--node-timeout", "0"))

    seen: list[UpOptions] = []
    monkeypatch.setattr(services, "run_up", lambda opts: seen.append(opts) or 0)
    args = build_parser().parse_args(["up", "--data-dir", str(tmp_path), "--node-timeout", "2", "--down-after", "30"])
    assert args.func(args) == 0
    cluster = Cluster(seen[0])
    cluster.data_dir.mkdir(parents=True, exist_ok=True)
    cluster.plan()
    for child in cluster.children:
        argv = " ".join(child.argv)
        if child.role == "metadata":
            assert "--node-timeout 2.0 --down-after 30.0" in argv
        if child.role == "storage":
            assert "--heartbeat-interval 0.5" in argv
    defaults = build_parser().parse_args(["up"])
    assert metadata.cli_args.liveness_argv(defaults) == () and services._heartbeat_argv(defaults.node_timeout) == ()


def test_reclaim_flags_reach_the_storage_and_metadata_configs_and_objstore_up(tmp_path, monkeypatch):
    from objstore.cluster.launcher import Cluster, UpOptions

    monkeypatch.setenv("OBJSTORE_CLUSTER_SECRET", "S")
    s = objstore.node.cli_args.config_from_args(_parse(
        objstore.node.cli_args, "--node-id", "s1", "--data-dir", "/d", "--compaction-interval", "5",
        "--gc-interval", "7", "--gc-grace", "90", "--segment-bytes", "65536"))
    assert (s.compaction_interval, s.gc_interval, s.gc_grace, s.segment_bytes) == (5, 7, 90, 65536)
    defaults = objstore.node.cli_args.config_from_args(_parse(objstore.node.cli_args, "--node-id", "s1",
                                                              "--data-dir", "/d"))
    assert (defaults.compaction_interval, defaults.gc_interval, defaults.gc_grace) == (60, 600, 3600)
    m = metadata.cli_args.config_from_args(_parse(metadata.cli_args, "--node-id", "m1", "--data-dir", "/d",
                                                  "--gc-grace", "90"))
    assert m.gc_grace == 90
    args = build_parser().parse_args(["up", "--gc-grace", "90", "--gc-interval", "7"])
    cluster = Cluster(UpOptions(data_dir=str(tmp_path), reclaim_args=objstore.node.cli_args.reclaim_argv(args)))
    cluster.plan()
    storage = [c.argv for c in cluster.children if c.role == "storage"]
    meta = [c.argv for c in cluster.children if c.role == "metadata"]
    assert all(a[-4:] == ["--gc-interval", "7.0", "--gc-grace", "90.0"] for a in storage)
    assert all(a[-2:] == ["--gc-grace", "90.0"] for a in meta)


def test_compaction_rate_and_threshold_flags_reach_the_storage_config_and_objstore_up(tmp_path, monkeypatch):
    from objstore.cluster.launcher import Cluster, UpOptions

    monkeypatch.setenv("OBJSTORE_CLUSTER_SECRET", "S")
    s = objstore.node.cli_args.config_from_args(_parse(
        objstore.node.cli_args, "--node-id", "s1", "--data-dir", "/d", "--compaction-rate", "5",
        "--compaction-threshold", "0.3"))
    assert (s.compaction_rate, s.compaction_threshold) == (5, 0.3)
    defaults = objstore.node.cli_args.config_from_args(_parse(objstore.node.cli_args, "--node-id", "s1",
                                                              "--data-dir", "/d"))
    assert (defaults.compaction_rate, defaults.compaction_threshold) == (64, 0.5)
    for bad in (("--compaction-threshold", "0"), ("--compaction-threshold", "1.5"), ("--compaction-rate", "-1")):
        with pytest.raises(InvalidArgument, match="compaction"):
            objstore.node.cli_args.config_from_args(_parse(objstore.node.cli_args, "--node-id", "s1",
                                                           "--data-dir", "/d", *bad))
    args = build_parser().parse_args(["up", "--compaction-rate", "0", "--compaction-threshold", "0.25",
                                      "--gc-grace", "90"])
    cluster = Cluster(UpOptions(data_dir=str(tmp_path), reclaim_args=objstore.node.cli_args.reclaim_argv(args)))
    cluster.plan()
    for child in cluster.children:
        argv = " ".join(child.argv)
        if child.role == "storage":
            assert "--compaction-rate 0.0 --compaction-threshold 0.25" in argv and "--gc-grace 90.0" in argv
        if child.role == "metadata":
            assert "--compaction" not in argv and child.argv[-2:] == ["--gc-grace", "90.0"]


def test_lease_reads_are_on_by_default_and_the_flag_reaches_every_metadata_node(tmp_path, monkeypatch):
    from objstore.cluster.launcher import Cluster
    from ops.cli import services

    monkeypatch.setenv("OBJSTORE_CLUSTER_SECRET", "S")
    base = ("--node-id", "m1", "--data-dir", "/d", "--secret", "S")
    assert metadata.cli_args.config_from_args(_parse(metadata.cli_args, *base)).lease_reads is True
    assert metadata.cli_args.config_from_args(_parse(metadata.cli_args, *base, "--no-lease-reads")).lease_reads is False
    seen: list = []
    monkeypatch.setattr(services, "run_up", lambda opts: seen.append(opts) or 0)
    for flags, expected in (((), ""), (("--no-lease-reads",), "--no-lease-reads"), (("--lease-reads",), "--lease-reads")):
        args = build_parser().parse_args(["up", "--data-dir", str(tmp_path), *flags])
        assert args.func(args) == 0
        cluster = Cluster(seen[-1])
        cluster.data_dir.mkdir(parents=True, exist_ok=True)
        cluster.plan()
        metas = [c.argv for c in cluster.children if c.role == "metadata"]
        assert len(metas) == 3
        for argv in metas:
            assert [a for a in argv if "lease-reads" in a] == ([expected] if expected else [])

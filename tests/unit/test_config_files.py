"""Services configured from TOML files: every field settable, flags override the file,
secrets only from the environment or a private secret file, and admin commands find the
cluster from any service's config file."""
from __future__ import annotations

import argparse
import os

import pytest

import gateway.cli_args
import metadata.cli_args
import objstore.node.cli_args
from objstore.config import GatewayConfig, MetadataConfig, StorageConfig
from objstore.errors import InvalidArgument
from ops.cli.cluster import add_cluster_arguments, find_cluster
from ops.cli.output import CommandError


def _parse(flags_module, *argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    flags_module.add_arguments(p)
    return p.parse_args(list(argv))


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret"
    path.write_text("s3cr3t-from-file\n")
    os.chmod(path, 0o600)
    return path


@pytest.fixture(autouse=True)
def no_env_secret(monkeypatch):
    monkeypatch.delenv("OBJSTORE_CLUSTER_SECRET", raising=False)


def test_a_storage_node_from_toml_with_its_listen_and_advertised_addresses(tmp_path, secret_file):
    cfg = tmp_path / "storage.toml"
    cfg.write_text(f'''
node_id = "s4"
data_dir = "/var/lib/objstore/storage"
host = "0.0.0.0"
port = 7100
advertise = "10.0.0.14:7100"
zone = "zone-b"
weight = 2.0
capacity_bytes = 1000000
metadata = ["10.0.0.11:7000", "10.0.0.12:7000"]
secret_file = "{secret_file}"
''')
    s = objstore.node.cli_args.config_from_args(_parse(objstore.node.cli_args, "--config", str(cfg)))
    assert s == StorageConfig("s4", "/var/lib/objstore/storage", "s3cr3t-from-file", "0.0.0.0", 7100, zone="zone-b",
                              weight=2.0, capacity_bytes=1000000, metadata=("10.0.0.11:7000", "10.0.0.12:7000"),
                              advertise="10.0.0.14:7100")
    # Flags override the file; an explicit secret overrides the secret file.
    s2 = objstore.node.cli_args.config_from_args(_parse(
        objstore.node.cli_args, "--config", str(cfg), "--port", "7200", "--zone", "zone-c", "--secret", "flag"))
    assert (s2.port, s2.zone, s2.secret, s2.advertise) == (7200, "zone-c", "flag", "10.0.0.14:7100")


def test_every_metadata_and_gateway_field_is_settable_from_toml(tmp_path, secret_file, monkeypatch):
    cfg = tmp_path / "metadata.toml"
    cfg.write_text('''
node_id = "m2"
data_dir = "/d"
port = 7000
peers = ["m1=10.0.0.11:7000", "m2=10.0.0.12:7000", "m3=10.0.0.13:7000"]
snapshot_every = 500
tick_ms = 20
election_ticks = 10
heartbeat_ticks = 3
log_segment_bytes = 4096
''')
    monkeypatch.setenv("OBJSTORE_CLUSTER_SECRET", "from-env")
    m = metadata.cli_args.config_from_args(_parse(metadata.cli_args, "--config", str(cfg), "--tick-ms", "30"))
    assert (m.node_id, m.secret, m.peers[1], m.snapshot_every, m.tick_ms, m.election_ticks, m.log_segment_bytes) == (
        "m2", "from-env", "m2=10.0.0.12:7000", 500, 30, 10, 4096)
    gw = tmp_path / "gateway.toml"
    gw.write_text(f'''
gateway_id = "gw2"
metadata = ["10.0.0.11:7000"]
host = "0.0.0.0"
port = 9000
secret_file = "{secret_file}"
body_stall_seconds = 5.0
metadata_timeout_seconds = 2.0
virtual_host_suffixes = ["s3.example.com"]
''')
    monkeypatch.delenv("OBJSTORE_CLUSTER_SECRET")
    g = gateway.cli_args.config_from_args(_parse(gateway.cli_args, "--config", str(gw), "--metadata-timeout", "1.5"))
    assert isinstance(g, GatewayConfig)
    assert (g.secret, g.body_stall_seconds, g.metadata_timeout_seconds, g.virtual_host_suffixes) == (
        "s3cr3t-from-file", 5.0, 1.5, ("s3.example.com",))
    assert isinstance(m, MetadataConfig)


@pytest.mark.parametrize("key", ["secret", "secret_key"])
def test_a_secret_in_a_toml_config_is_refused(tmp_path, key):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'gateway_id = "gw1"\nmetadata = ["a:1"]\n{key} = "oops"\n')
    with pytest.raises(InvalidArgument, match="secrets do not belong in a config file"):
        gateway.cli_args.config_from_args(_parse(gateway.cli_args, "--config", str(cfg), "--secret", "x"))


def test_a_secret_file_readable_by_others_or_empty_is_refused(tmp_path, secret_file):
    cfg = tmp_path / "storage.toml"
    cfg.write_text(f'node_id = "s1"\ndata_dir = "/d"\nsecret_file = "{secret_file}"\n')
    os.chmod(secret_file, 0o644)
    with pytest.raises(InvalidArgument, match="readable by others"):
        objstore.node.cli_args.config_from_args(_parse(objstore.node.cli_args, "--config", str(cfg)))
    os.chmod(secret_file, 0o600)
    secret_file.write_text("  \n")
    with pytest.raises(InvalidArgument, match="empty"):
        objstore.node.cli_args.config_from_args(_parse(objstore.node.cli_args, "--config", str(cfg)))
    with pytest.raises(InvalidArgument, match="cannot read the secret file"):
        objstore.node.cli_args.config_from_args(_parse(objstore.node.cli_args, "--config", str(cfg),
                                                       "--secret-file", str(tmp_path / "none")))


def test_bad_config_files_are_named_in_the_error(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("node_id = \n")
    with pytest.raises(InvalidArgument, match="not valid TOML"):
        objstore.node.cli_args.config_from_args(_parse(objstore.node.cli_args, "--config", str(cfg)))
    cfg.write_text('node_id = "s1"\ndata_dir = "/d"\nzoen = "a"\n')
    with pytest.raises(InvalidArgument, match="unknown config keys: zoen"):
        objstore.node.cli_args.config_from_args(_parse(objstore.node.cli_args, "--config", str(cfg), "--secret", "x"))
    with pytest.raises(InvalidArgument, match="cannot read the config file"):
        objstore.node.cli_args.config_from_args(_parse(objstore.node.cli_args, "--config", str(tmp_path / "no.toml")))


def _cluster_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_cluster_arguments(p)
    return p.parse_args(list(argv))


def test_admin_commands_find_the_cluster_from_any_services_config(tmp_path, secret_file):
    storage = tmp_path / "storage.toml"
    storage.write_text(f'node_id = "s1"\ndata_dir = "/d"\nmetadata = ["10.0.0.11:7000", "10.0.0.12:7000"]\n'
                       f'secret_file = "{secret_file}"\ntls_ca = "/etc/objstore/ca.pem"\n')
    ref = find_cluster(_cluster_args("--config", str(storage), "--data-dir", str(tmp_path / "none")))
    assert (ref.metadata, ref.secret, ref.tls_ca) == (("10.0.0.11:7000", "10.0.0.12:7000"), "s3cr3t-from-file",
                                                      "/etc/objstore/ca.pem")
    meta = tmp_path / "metadata.toml"
    meta.write_text(f'node_id = "m1"\ndata_dir = "/d"\npeers = ["m1=10.0.0.11:7000", "m2=10.0.0.12:7000"]\n'
                    f'secret_file = "{secret_file}"\n')
    ref = find_cluster(_cluster_args("--config", str(meta), "--metadata", "10.0.0.13:7000"))
    assert ref.metadata == ("10.0.0.13:7000",)  # the flag wins
    assert find_cluster(_cluster_args("--config", str(meta))).metadata == ("10.0.0.11:7000", "10.0.0.12:7000")
    meta.write_text("node_id = [\n")
    with pytest.raises(CommandError):
        find_cluster(_cluster_args("--config", str(meta)))


def test_a_gateway_clock_offset_is_honoured_only_with_fault_injection(monkeypatch):
    import time

    from gateway.app import wall_clock

    monkeypatch.setenv("OBJSTORE_CLUSTER_SECRET", "s")
    with pytest.raises(InvalidArgument, match="needs enable_fault_injection"):
        gateway.cli_args.config_from_args(_parse(gateway.cli_args, "--id", "g", "--metadata", "a:1",
                                                 "--clock-offset", "5"))
    cfg = gateway.cli_args.config_from_args(_parse(gateway.cli_args, "--id", "g", "--metadata", "a:1",
                                                   "--clock-offset", "-5", "--enable-fault-injection"))
    assert abs(wall_clock(cfg)() - (time.time() - 5)) < 1.0
    plain = gateway.cli_args.config_from_args(_parse(gateway.cli_args, "--id", "g", "--metadata", "a:1"))
    assert wall_clock(plain) is time.time


def test_a_joining_metadata_node_asks_to_be_added_only_with_its_own_address_in_peers():
    from metadata.join import self_address

    peers = ("m1=10.0.0.11:7000", "m4=10.0.0.14:7000")
    assert self_address(MetadataConfig("m4", "/d", "s", peers=peers, join=True)) == "10.0.0.14:7000"
    assert self_address(MetadataConfig("m4", "/d", "s", peers=peers[:1], join=True)) is None  # waits for `add`
    assert self_address(MetadataConfig("m1", "/d", "s", peers=peers)) is None  # a founding member

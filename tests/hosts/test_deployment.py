"""A deployment as a user makes it: every service on its own host (a network namespace),
started from the example config files of ``ops/deploy/examples/`` with one command each;
S3 through any gateway; ``objstore status`` from any host shows the whole cluster; a new
host joins with its config file and one command per service (a storage node and gateway,
then a fourth metadata member that asks the group to add it)."""
from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.harness.eventually import eventually
from tests.harness.hosts.deploy import ACCESS_KEY, CLIENT, SECRET_KEY, Deployment, layout_hosts, render_configs

pytestmark = pytest.mark.integration


def s3_client(endpoint: str, **config):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        region_name="us-east-1", config=Config(retries={"max_attempts": 1}, **config))


def test_rendering_replaces_only_addresses_and_paths(tmp_path):
    addrs = {h: f"198.18.0.{i + 1}" for i, h in enumerate(layout_hosts("six-hosts"))}
    configs = render_configs("six-hosts", "h4", addrs, tmp_path / "h4", "the-secret")
    assert set(configs) == {"storage", "gateway"}
    text = configs["storage"].read_text()
    assert 'advertise = "198.18.0.4:7100"' in text and '"198.18.0.1:7000"' in text and "10.0.0." not in text
    assert f'data_dir = "{tmp_path}/h4/data/storage"' in text
    assert (tmp_path / "h4" / "etc" / "secret").stat().st_mode & 0o777 == 0o600
    assert "the-secret" not in text


def test_three_hosts_from_the_example_configs_and_a_fourth_joins(make_network, tmp_path):
    net = make_network(["h1", "h2", "h3", "h4", CLIENT])
    d = Deployment(net, "three-hosts", tmp_path, hosts=["h1", "h2", "h3"])
    try:
        d.start()
        # No secret on any command line: it came from each host's 0600 secret file.
        for s in d.services:
            assert d.secret not in Path(f"/proc/{s.proc.pid}/cmdline").read_text()

        def s3_round_trip() -> bytes:
            put = s3_client(d.endpoint("h1"))
            put.create_bucket(Bucket="hosts")
            put.put_object(Bucket="hosts", Key="k", Body=b"across hosts")
            return s3_client(d.endpoint("h3")).get_object(Bucket="hosts", Key="k")["Body"].read()

        assert d.from_client(s3_round_trip) == b"across hosts"

        def status(host: str, role: str) -> dict:
            out = d.objstore(host, "status", "--json", "--config", str(d.service(role, host).config))
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)

        for host, role in (("h1", "metadata"), ("h2", "storage"), ("h3", "gateway")):
            st = status(host, role)
            assert sorted((n["node_id"], n["address"], n["reachable"]) for n in st["nodes"]) == [
                ("s1", "198.18.0.1:7100", True), ("s2", "198.18.0.2:7100", True), ("s3", "198.18.0.3:7100", True)]
            # whichever member answered, it names a leader the group agrees on
            assert st["metadata"]["role"] in ("leader", "follower"), st["metadata"]
            assert st["metadata"]["leader"] in st["metadata"]["members"], st["metadata"]

        # A new host: the six-host layout's h4 (same metadata addresses), one command each.
        for s in d.add_host("h4", layout="six-hosts"):
            d.start_service(s)
        d.wait_registered()
        st = status("h4", "storage")
        assert {n["node_id"]: n["zone"] for n in st["nodes"]} == {
            "s1": "zone-a", "s2": "zone-b", "s3": "zone-c", "s4": "zone-a"}
        assert all(n["reachable"] for n in st["nodes"])
        assert d.from_client(lambda: s3_client(d.endpoint("h4")).get_object(
            Bucket="hosts", Key="k")["Body"].read()) == b"across hosts"

        # A fourth metadata member on h4: its config (join = true) and one command.
        (m4,) = d.add_host("h4", layout="three-hosts")
        d.start_service(m4)

        def voters() -> list[str]:
            out = d.objstore("h1", "metadata", "status", "--json", "--config", str(d.service("metadata", "h1").config))
            members = json.loads(out.stdout)["members"] if out.returncode in (0, 1) and out.stdout else []
            return sorted(m["node_id"] for m in members if m.get("membership") == "voter" and m.get("reachable"))

        # No `objstore metadata add`: the new member asked the group itself.
        eventually(lambda: voters() == ["m1", "m2", "m3", "m4"], 60, 0.5, message="m4 to become a voter")
    finally:
        d.stop()
    assert all(s.proc.returncode == 0 for s in d.services), [(s.name, s.proc.returncode) for s in d.services]

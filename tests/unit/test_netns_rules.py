"""The fault rules of the many-hosts harness (tests/harness/hosts/rules.py), pure."""
from __future__ import annotations

import pytest

from tests.harness.hosts.rules import (
    HEALED, Faults, host_address, iptables_ruleset, isolate, lossy, one_way, partition, rate_limit, split, tc_commands,
)

HOSTS = ["h1", "h2", "h3", "h4", "h5"]
ADDRS = {h: host_address(i) for i, h in enumerate(HOSTS)}


def drops(host: str, faults: Faults) -> list[str]:
    return [line for line in iptables_ruleset(host, faults, ADDRS).splitlines() if line.startswith("-A")]


def test_addresses_are_distinct_and_in_the_benchmarking_range():
    addrs = [host_address(i) for i in range(600)]
    assert addrs[:3] == ["198.18.0.1", "198.18.0.2", "198.18.0.3"] and addrs[255] == "198.18.1.0"
    assert len(set(addrs)) == 600
    assert host_address(65535).startswith("198.19.")
    with pytest.raises(ValueError):
        host_address(2 ** 17)


def test_a_partition_drops_every_packet_between_groups_on_the_receiving_side_only():
    f = partition(["h1", "h2"], ["h3"])
    assert f.cuts == {("h1", "h3"), ("h2", "h3"), ("h3", "h1"), ("h3", "h2")}
    assert drops("h3", f) == ["-A INPUT -s 198.18.0.1/32 -j DROP", "-A INPUT -s 198.18.0.2/32 -j DROP"]
    assert drops("h1", f) == ["-A INPUT -s 198.18.0.3/32 -j DROP"]
    assert drops("h4", f) == []  # not in the partition: reaches everyone


def test_isolate_split_and_one_way_cuts():
    assert isolate("h2", HOSTS) == partition(["h2"], ["h1", "h3", "h4", "h5"])
    s = split(HOSTS, ["h4", "h5"])
    assert {d for _, d in s.cuts} == set(HOSTS) and ("h4", "h5") not in s.cuts and ("h1", "h2") not in s.cuts
    with pytest.raises(ValueError):
        split(HOSTS, ["h9"])
    f = one_way("h1", "h2")
    assert drops("h2", f) == ["-A INPUT -s 198.18.0.1/32 -j DROP"] and drops("h1", f) == []


def test_loss_uses_random_statistic_drops_on_every_link_of_a_victim():
    f = lossy(HOSTS, ["h1"], 0.01)
    assert len(f.loss) == 8  # four peers, both ways
    assert drops("h1", f)[0] == "-A INPUT -s 198.18.0.2/32 -m statistic --mode random --probability 0.010000 -j DROP"
    assert len(drops("h3", f)) == 1 and "198.18.0.1/32" in drops("h3", f)[0]
    with pytest.raises(ValueError):
        lossy(HOSTS, ["h1"], 1.0)


def test_the_ruleset_is_whole_so_applying_healed_removes_everything():
    text = iptables_ruleset("h1", HEALED, ADDRS)
    assert text == "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    combined = isolate("h1", HOSTS) | lossy(HOSTS, ["h2"], 0.5)
    assert len(drops("h1", combined)) == 5  # four cuts and the loss from h2
    assert "127.0.0.1" not in iptables_ruleset("h1", combined, ADDRS)  # loopback is never touched
    with pytest.raises(KeyError):
        iptables_ruleset("h1", one_way("ghost", "h1"), ADDRS)


def test_rate_limits_become_a_token_bucket_and_healing_removes_it():
    f = rate_limit(["h1"], 200) | rate_limit(["h1"], 50)
    (cmd,) = tc_commands("h1", f)
    assert cmd[:7] == ["tc", "qdisc", "replace", "dev", "eth0", "root", "tbf"] and cmd[8] == "50mbit"
    assert int(cmd[cmd.index("burst") + 1]) >= 64 * 1024
    assert tc_commands("h2", f) == [["tc", "qdisc", "del", "dev", "eth0", "root"]]
    assert tc_commands("h1", HEALED) == [["tc", "qdisc", "del", "dev", "eth0", "root"]]
    with pytest.raises(ValueError):
        rate_limit(["h1"], 0)
    assert "h1@50Mbit" in f.describe() and HEALED.describe() == "healed"

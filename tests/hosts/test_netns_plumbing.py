"""The many-hosts harness itself: hosts really talk over their own addresses, a cut really
drops, healing restores, loss and rate limits are in force, and nothing is left behind."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from tests.harness.eventually import eventually
from tests.harness.hosts import rules
from tests.harness.hosts.netns import NAME_PREFIX, Network, run_in_host, sweep_stale

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
while True:
    c, peer = s.accept()
    c.sendall(peer[0].encode()); c.close()
"""


def _namespaces() -> set[str]:
    return set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())


def _ask(address: str, port: int, timeout: float = 1.0) -> str:
    """What the server at ``address`` says: the address it saw us come from."""
    with socket.create_connection((address, port), timeout=timeout) as s:
        s.settimeout(timeout)
        return s.recv(100).decode()


def _reaches(net: Network, src: str, dst: str, port: int = 5000) -> bool:
    try:
        return run_in_host(net[src], lambda: _ask(net[dst].address, port)) == net[src].address
    except OSError:
        return False


@pytest.fixture
def net(make_network):
    n = make_network(["h1", "h2", "h3"])
    for h in n.hosts:  # the same port on every host
        n.popen(h, [sys.executable, "-c", SERVER, "5000"])
    eventually(lambda: all(_reaches(n, a, b) for a in n.hosts for b in n.hosts if a != b), 10,
               message="every host to reach every other")
    return n


def test_each_host_has_its_own_address_and_the_same_port_on_each(net):
    assert net.addresses == {"h1": "198.18.0.1", "h2": "198.18.0.2", "h3": "198.18.0.3"}
    # The server on h2 sees h1's own address: traffic goes over the bridge, not loopback.
    assert run_in_host(net["h1"], lambda: _ask("198.18.0.2", 5000)) == "198.18.0.1"
    assert run_in_host(net["h3"], lambda: _ask("127.0.0.1", 5000)) == "127.0.0.1"  # its own loopback
    with pytest.raises(OSError):  # the machine's own namespace is not on the bridge
        _ask("198.18.0.2", 5000, timeout=0.5)


def test_a_partition_drops_traffic_both_ways_and_healing_restores_it(net):
    net.apply(rules.isolate("h2", net.hosts))
    assert "-A INPUT -s 198.18.0.1/32 -j DROP" in net.rules("h2")
    assert not _reaches(net, "h1", "h2") and not _reaches(net, "h2", "h3")
    assert _reaches(net, "h1", "h3")  # the rest still talk
    net.heal()
    assert "DROP" not in net.rules("h2")
    assert _reaches(net, "h1", "h2") and _reaches(net, "h2", "h3")


def test_a_one_way_cut_drops_one_direction_only(net):
    net.apply(rules.one_way("h1", "h2"))
    assert "DROP" not in net.rules("h1") and "-s 198.18.0.1/32" in net.rules("h2")
    assert _datagrams_through(net, "h1", "h2", 50) == 0
    assert _datagrams_through(net, "h2", "h1", 50) == 50
    assert not _reaches(net, "h1", "h2")  # TCP needs both directions
    net.heal()
    assert _reaches(net, "h1", "h2")


def test_packet_loss_drops_about_its_share_and_a_rate_limit_is_installed(net):
    net.apply(rules.lossy(list(net.hosts), ["h3"], 0.5) | rules.rate_limit(["h1"], 200))
    assert "statistic --mode random --probability 0.5" in net.rules("h3")
    assert "tbf" in net.run("h1", ["tc", "qdisc", "show", "dev", "eth0"]).stdout
    assert _datagrams_through(net, "h1", "h3", 400) in range(120, 281)  # ~200 of 400; binomial, sd 10
    assert _datagrams_through(net, "h1", "h2", 100) == 100  # h1-h2 is not lossy
    net.heal()
    assert "tbf" not in net.run("h1", ["tc", "qdisc", "show", "dev", "eth0"]).stdout
    assert _datagrams_through(net, "h1", "h3", 100) == 100


def _datagrams_through(net: Network, src: str, dst: str, count: int) -> int:
    """Send ``count`` UDP datagrams from ``src`` to ``dst``; how many arrived. A socket stays
    in the namespace it was made in, so each is made inside its host and used from here."""
    def receiver() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((net[dst].address, 0))
        s.settimeout(0.5)
        return s

    rx = run_in_host(net[dst], receiver)
    tx = run_in_host(net[src], lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    try:
        for i in range(count):
            tx.sendto(b"%d" % i, rx.getsockname())
            time.sleep(0.0005)
        got = 0
        while True:
            try:
                rx.recv(64)
            except socket.timeout:
                return got
            got += 1
    finally:
        rx.close()
        tx.close()


def test_closing_removes_every_namespace_and_process(make_network):
    net = make_network(["a", "b"])
    proc = net.popen("a", [sys.executable, "-c", "import time; time.sleep(60)"])
    made = {h.namespace for h in net.hosts.values()} | {net.switch}
    assert made <= _namespaces()
    net.close()
    assert not made & _namespaces()
    assert proc.poll() is not None
    net.close()  # again: nothing to do


def test_a_killed_runs_namespaces_are_swept(tmp_path):
    """A run killed outright (SIGKILL: no finalizer, no atexit) leaves its namespaces; the
    next run's sweep deletes them and the process left inside."""
    script = ("import time, sys; from tests.harness.hosts.netns import Network; "
              "n = Network(['x']).create(); n.popen('x', [sys.executable, '-c', 'import time; time.sleep(60)']); "
              "print(n.run_id, flush=True); time.sleep(60)")
    maker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    run_id = maker.stdout.readline().strip()
    assert run_id.startswith(NAME_PREFIX) and f"{run_id}-x" in _namespaces()
    maker.kill()
    maker.wait()
    assert f"{run_id}-x" in _namespaces()
    swept = sweep_stale()
    assert {f"{run_id}-x", f"{run_id}-sw"} <= set(swept)
    assert not {n for n in _namespaces() if n.startswith(run_id)}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and run_id in subprocess.run(["ps", "ax"], capture_output=True, text=True).stdout:
        time.sleep(0.05)

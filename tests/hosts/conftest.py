"""Fixtures of the many-hosts tests: hosts in network namespaces (tests/harness/hosts).

Every test here is skipped, with the reason, where namespaces cannot be made (not root,
``ip``/``iptables`` missing). A network is always closed by its fixture, so a failing test
leaves no namespace, interface, rule or process behind.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import pytest

from tests.harness.hosts.deploy import CLIENT, Deployment, layout_hosts
from tests.harness.hosts.netns import Network, unavailable_reason

_REASON = unavailable_reason()
STORAGE_TIMEOUT = 10.0  # the five hosts' gateways' --storage-timeout


def pytest_collection_modifyitems(config, items):
    if _REASON is None:
        return
    skip = pytest.mark.skip(reason=f"many-hosts tests: {_REASON}")
    for item in items:
        if "tests/hosts/" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture
def make_network() -> Iterator[Callable[[Sequence[str]], Network]]:
    """``make_network(["h1", "h2"])``: a created network, closed after the test."""
    made: list[Network] = []

    def make(hosts: Sequence[str]) -> Network:
        net = Network(hosts)
        made.append(net)
        return net.create()

    yield make
    for net in made:
        net.close()


@pytest.fixture(scope="session")
def five_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The five-host example deployment (``ops/deploy/examples/five-hosts``) and a client
    host, shared by the tests that fault its network (each heals what it did)."""
    net = Network([*layout_hosts("five-hosts"), CLIENT]).create()
    # A streamed write whose placement has two nodes cut off by a test's partition
    # (kept-alive connections, nothing answers) waits for the gateway's storage timeout,
    # then 503s (a small one goes to handoff nodes after the straggler bound):
    # STORAGE_TIMEOUT rather than the default 30 s.
    d = Deployment(net, "five-hosts", tmp_path_factory.mktemp("five-hosts"),
                   extra={"gateway": ["--storage-timeout", str(STORAGE_TIMEOUT)]})
    try:
        d.start()
        yield d
    finally:
        try:
            d.stop()
        finally:
            net.close()

"""Network faults between hosts, as data, and the commands that make them (pure).

A :class:`Faults` value says which links are cut (one way: packets from ``src`` to ``dst``
are dropped), which lose a share of their packets, and which hosts' outgoing traffic is
limited in rate. The helpers build common shapes from host names: :func:`partition` (groups
that cannot reach each other), :func:`isolate`, :func:`one_way`, :func:`split` (a minority
and the rest), :func:`lossy` (random loss on every link of some hosts).

:func:`iptables_ruleset` turns the faults into the complete ``filter`` table of one host's
namespace (``iptables-restore`` input): a packet from ``src`` to ``dst`` is dropped in
``dst``'s INPUT chain, whether the link is cut or loses packets (``-m statistic --mode
random``), so the sender sees no error, only silence, as on a real network. Nothing but the
addresses of other hosts is ever matched: loopback traffic inside a host is never touched.
:func:`tc_commands` limits a host's outgoing rate on its one interface with a token bucket
(``tc tbf``; ``tc netem`` is not available on every kernel, so there is no delay here).

Invariants: everything here is a pure function of its arguments; :data:`HEALED` (no fault)
gives an empty ruleset with ACCEPT policies and a command that removes the rate limit, so
applying it heals a host whatever was applied before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

IFACE = "eth0"  # the one interface of every host namespace


@dataclass(frozen=True)
class Faults:
    """The faults in force. ``cuts``: (src, dst) links whose packets are dropped; ``loss``:
    (src, dst, probability) links losing that share of packets; ``rates``: (host, mbit/s)
    limits on a host's outgoing traffic."""

    cuts: frozenset[tuple[str, str]] = frozenset()
    loss: frozenset[tuple[str, str, float]] = frozenset()
    rates: frozenset[tuple[str, float]] = frozenset()

    def __or__(self, other: "Faults") -> "Faults":
        return Faults(self.cuts | other.cuts, self.loss | other.loss, self.rates | other.rates)

    def describe(self) -> str:
        parts = [f"{s}-x->{d}" for s, d in sorted(self.cuts)]
        parts += [f"{s}-{p:.0%}->{d}" for s, d, p in sorted(self.loss)]
        parts += [f"{h}@{m:g}Mbit" for h, m in sorted(self.rates)]
        return " ".join(parts) or "healed"


HEALED = Faults()


def partition(*groups: Iterable[str]) -> Faults:
    """No host of one group reaches a host of another, either way."""
    sets = [sorted(set(g)) for g in groups]
    cuts = {(a, b) for i, ga in enumerate(sets) for j, gb in enumerate(sets) if i != j for a in ga for b in gb}
    return Faults(cuts=frozenset(cuts))


def isolate(host: str, hosts: Iterable[str]) -> Faults:
    """``host`` reaches no other host and none reaches it."""
    return partition([host], [h for h in hosts if h != host])


def one_way(src: str, dst: str) -> Faults:
    """Packets from ``src`` to ``dst`` are dropped; the other direction still works."""
    return Faults(cuts=frozenset({(src, dst)}))


def split(hosts: Sequence[str], minority: Iterable[str]) -> Faults:
    """``minority`` on one side, every other host on the other."""
    side = set(minority)
    unknown = side - set(hosts)
    if unknown:
        raise ValueError(f"unknown hosts {sorted(unknown)}")
    return partition(side, [h for h in hosts if h not in side])


def lossy(hosts: Sequence[str], victims: Iterable[str], probability: float) -> Faults:
    """Every link to and from each of ``victims`` loses ``probability`` of its packets."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"loss probability must be in (0, 1), not {probability}")
    vs = set(victims)
    links = {(a, b, probability) for a in hosts for b in hosts if a != b and (a in vs or b in vs)}
    return Faults(loss=frozenset(links))


def rate_limit(hosts: Iterable[str], mbit: float) -> Faults:
    """Each of ``hosts`` sends at most ``mbit`` Mbit/s."""
    if mbit <= 0:
        raise ValueError("a rate limit must be positive")
    return Faults(rates=frozenset((h, float(mbit)) for h in hosts))


def iptables_ruleset(host: str, faults: Faults, addresses: Mapping[str, str]) -> str:
    """The ``iptables-restore`` input for ``host``'s namespace: its whole filter table.

    ``addresses`` maps every host name to its IPv4 address; raises KeyError for a fault
    naming a host not in it."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    for src, dst in sorted(faults.cuts):
        if dst == host and src != host:
            lines.append(f"-A INPUT -s {addresses[src]}/32 -j DROP")
    for src, dst, p in sorted(faults.loss):
        if dst == host and src != host:
            lines.append(f"-A INPUT -s {addresses[src]}/32 -m statistic --mode random --probability {p:.6f} -j DROP")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def tc_commands(host: str, faults: Faults) -> list[list[str]]:
    """The ``tc`` command lines that set ``host``'s outgoing rate (the lowest limit given for
    it), or remove any limit when it has none. Run inside the host's namespace; removing a
    limit that is not there fails harmlessly."""
    rates = [m for h, m in faults.rates if h == host]
    if not rates:
        return [["tc", "qdisc", "del", "dev", IFACE, "root"]]
    mbit = min(rates)
    rate_bytes = int(mbit * 1_000_000 / 8)
    burst = max(64 * 1024, rate_bytes // 100)  # 10 ms of traffic, at least 64 KiB
    return [["tc", "qdisc", "replace", "dev", IFACE, "root", "tbf", "rate", f"{mbit:g}mbit",
             "burst", str(burst), "latency", "100ms"]]


SUBNET = "198.18.0.0/15"  # the benchmarking range: never a real network's addresses
PREFIX_LEN = 15


def host_address(index: int) -> str:
    """The address of host number ``index`` (from 0) in :data:`SUBNET`: 198.18.0.1, 198.18.0.2,
    ... Every run has its own switch, so runs may use the same addresses at the same time."""
    n = index + 1
    if not 0 < n < 2 ** (32 - PREFIX_LEN) - 1:
        raise ValueError(f"no address for host number {index}")
    return f"198.{18 + n // 65536}.{n // 256 % 256}.{n % 256}"

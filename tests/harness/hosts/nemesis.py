"""A seeded nemesis of network faults between hosts (namespaces), one fault at a time.

:func:`plan` turns a ``random.Random`` and the hosts into a list of :class:`Step` (pure: a
seed always gives the same schedule); :func:`play` applies it to a
:class:`~tests.harness.hosts.netns.Network` while a workload runs. Kinds:

- ``partition``: the hosts cut into two random groups, both ways;
- ``isolate``: one host cut from every other;
- ``split``: a majority/minority split whose minority holds one metadata host and one
  gateway host (so a gateway is cut off from the metadata majority);
- ``one_way``: packets from one host to another dropped, the other way kept;
- ``loss``: every link of one or two hosts loses 3-15% of its packets;
- ``bandwidth``: one or two hosts send at most 5-50 Mbit/s (``tc tbf``).

Invariants: the first steps go through every kind once (in a seeded order), so even a short
run injects each; each step holds ``hold`` seconds and is healed before its ``gap``;
:func:`play` heals everything when it ends, however it ends, and logs every change with its
time on the monotonic clock the workload's history uses.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from tests.harness.hosts import rules
from tests.harness.hosts.netns import Network

KINDS: tuple[str, ...] = ("partition", "isolate", "split", "one_way", "loss", "bandwidth")


@dataclass(frozen=True)
class Step:
    """One fault: its ``kind``, what it does, how long it holds and the calm after it."""

    kind: str
    faults: rules.Faults
    hold: float
    gap: float

    def describe(self) -> str:
        return f"{self.kind}: {self.faults.describe()} for {self.hold:.1f}s"


def make_fault(kind: str, rng: random.Random, hosts: Sequence[str], metadata_hosts: Sequence[str],
               gateway_hosts: Sequence[str]) -> rules.Faults:
    """The faults of one step of ``kind`` (pure given ``rng``)."""
    hosts = list(hosts)
    if kind == "partition":
        shuffled = rng.sample(hosts, len(hosts))
        cut = rng.randint(1, len(hosts) - 1)
        return rules.partition(shuffled[:cut], shuffled[cut:])
    if kind == "isolate":
        return rules.isolate(rng.choice(hosts), hosts)
    if kind == "split":
        minority = {rng.choice(list(metadata_hosts)), rng.choice(list(gateway_hosts))}
        return rules.split(hosts, minority)
    if kind == "one_way":
        src, dst = rng.sample(hosts, 2)
        return rules.one_way(src, dst)
    if kind == "loss":
        return rules.lossy(hosts, rng.sample(hosts, rng.randint(1, 2)), round(rng.uniform(0.03, 0.15), 3))
    if kind == "bandwidth":
        return rules.rate_limit(rng.sample(hosts, rng.randint(1, 2)), rng.choice((5, 10, 20, 50)))
    raise ValueError(f"unknown fault kind {kind!r}")


def plan(rng: random.Random, seconds: float, hosts: Sequence[str], metadata_hosts: Sequence[str],
         gateway_hosts: Sequence[str], hold: tuple[float, float] = (1.0, 3.0),
         gap: tuple[float, float] = (0.5, 1.5)) -> list[Step]:
    """Steps filling about ``seconds`` of hold and gap, every kind among the first ones."""
    first = list(KINDS)
    rng.shuffle(first)
    out: list[Step] = []
    total = 0.0
    while total < seconds or len(out) < len(first):
        kind = first[len(out)] if len(out) < len(first) else rng.choice(KINDS)
        step = Step(kind, make_fault(kind, rng, hosts, metadata_hosts, gateway_hosts),
                    round(rng.uniform(*hold), 3), round(rng.uniform(*gap), 3))
        out.append(step)
        total += step.hold + step.gap
    return out


class Player:
    """Applies a plan to a network (see the module docstring); ``events`` is its log."""

    def __init__(self, net: Network, clock: Callable[[], float] = time.monotonic) -> None:
        self.net = net
        self.clock = clock
        self.events: list[str] = []
        self.injected: list[str] = []

    def log(self, what: str) -> None:
        self.events.append(f"{self.clock():.3f} {what}")

    def play(self, steps: Sequence[Step], stop: threading.Event) -> None:
        try:
            for step in steps:
                if stop.is_set():
                    break
                self.net.apply(step.faults)
                self.injected.append(step.kind)
                self.log(step.describe())
                stop.wait(step.hold)
                self.net.heal()
                self.log("healed")
                stop.wait(step.gap)
        finally:
            self.net.heal()

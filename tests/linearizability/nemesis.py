"""A nemesis for a real Raft metadata group: a seeded schedule of faults, one at a time.

:func:`plan` turns a ``random.Random`` into a list of :class:`Fault` (pure, so a seed always
gives the same schedule); :class:`Nemesis` plays it against a
:class:`~tests.integration.test_metadata_raft_harness.RaftGroup` while clients run. Faults:

- ``kill``: SIGKILL a member, restart it (same data directory) when the fault ends;
- ``pause``: SIGSTOP a member (a leader frozen mid-flight, like a long GC pause), SIGCONT;
- ``isolate``: cut every link of a member both ways (a 2-1 partition);
- ``deaf``: a member no longer hears the others but still reaches them (one-way 2-1);
- ``mute``: the others no longer hear a member but it still hears them (one-way 2-1);
- ``cut_link``: cut the one link between a member and another (the third still sees both).

A fault targets the current leader (found when the fault starts) or a random member.

Invariants: at most one fault is active at a time and each lasts its ``hold`` seconds,
then is healed before the ``gap`` that follows; :meth:`Nemesis.heal_all` (also run when
:meth:`Nemesis.run` ends, however it ends) leaves every member running, continued and
fully connected. Every step is logged with its time in :attr:`Nemesis.events`.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from tests.integration.test_metadata_raft_harness import Member, RaftGroup

PROCESS_FAULTS: tuple[str, ...] = ("kill", "pause")
PARTITIONS: tuple[str, ...] = ("isolate", "deaf", "mute", "cut_link")
KINDS: tuple[str, ...] = PROCESS_FAULTS + PARTITIONS


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: ``kind`` (module docstring) on the ``leader`` or a ``random`` member, held
    ``hold`` seconds, then ``gap`` seconds without faults."""

    kind: str
    target: str
    hold: float
    gap: float


def plan(rng: random.Random, seconds: float, hold: tuple[float, float] = (0.8, 3.0),
         gap: tuple[float, float] = (0.3, 1.5), leader_bias: float = 0.6) -> list[Fault]:
    """Faults filling about ``seconds`` of hold and gap (pure: the same RNG state gives the
    same plan). The first six go through every kind once, in random order, with a process
    fault and a partition among the first two; then kinds are drawn at random."""
    process, partitions = list(PROCESS_FAULTS), list(PARTITIONS)
    rng.shuffle(process)
    rng.shuffle(partitions)
    first = [process.pop(), partitions.pop()]
    rng.shuffle(first)
    rest = process + partitions
    rng.shuffle(rest)
    order = first + rest
    out: list[Fault] = []
    total = 0.0
    while total < seconds:
        kind = order[len(out)] if len(out) < len(order) else rng.choice(KINDS)
        target = "leader" if rng.random() < leader_bias else "random"
        f = Fault(kind, target, round(rng.uniform(*hold), 3), round(rng.uniform(*gap), 3))
        out.append(f)
        total += f.hold + f.gap
    return out


class Nemesis:
    """Plays a plan against ``group`` (see the module docstring)."""

    def __init__(self, group: RaftGroup, rng: random.Random, clock: Callable[[], float] = time.monotonic) -> None:
        self.group = group
        self.rng = rng
        self.clock = clock
        self.events: list[str] = []
        self.injected: list[str] = []          # kinds of the faults actually applied
        self._paused: set[str] = set()
        self._killed: set[str] = set()
        self._cut = False

    def log(self, what: str) -> None:
        self.events.append(f"{self.clock():.3f} {what}")

    async def run(self, faults: Sequence[Fault], stop: asyncio.Event) -> None:
        """Apply each fault in turn until the plan or ``stop`` ends; always heals."""
        try:
            for f in faults:
                if stop.is_set():
                    break
                victim, leads = await self._target(f.target)
                other = self.rng.choice([m for m in self.group.members.values() if m is not victim])
                await self._apply(f.kind, victim, other, leads)
                self.injected.append(f.kind)
                await _wait(stop, f.hold)
                await self.heal_all()
                await _wait(stop, f.gap)
        finally:
            await self.heal_all()

    async def _target(self, target: str) -> tuple[Member, bool]:
        """The member to hit, and whether it leads (as far as the group's statuses say)."""
        try:
            leader: Member | None = await self.group.leader(timeout=2.0)
        except AssertionError:
            leader = None
            self.log("no leader found")
        if target == "leader" and leader is not None:
            return leader, True
        m = self.rng.choice(list(self.group.members.values()))
        return m, m is leader

    async def _apply(self, kind: str, m: Member, other: Member, leads: bool) -> None:
        others = [o for o in self.group.members.values() if o is not m]
        if kind == "kill":
            await asyncio.to_thread(m.kill)
            self._killed.add(m.id)
        elif kind == "pause":
            assert m.proc is not None
            m.proc.send_signal(signal.SIGSTOP)
            self._paused.add(m.id)
        elif kind == "isolate":
            self._cut = True
            await self.group.isolate(m)
        elif kind == "deaf":
            self._cut = True
            await self.group.partition(m, [], [o.id for o in others])
            for o in others:
                await self.group.partition(o, [m.id], [])
        elif kind == "mute":
            self._cut = True
            await self.group.partition(m, [o.id for o in others], [])
            for o in others:
                await self.group.partition(o, [], [m.id])
        elif kind == "cut_link":
            self._cut = True
            await self.group.partition(m, [other.id], [other.id])
            await self.group.partition(other, [m.id], [m.id])
        else:
            raise ValueError(f"unknown fault {kind!r}")
        target = f"{m.id}{' (leader)' if leads else ''}" + (f" and {other.id}" if kind == "cut_link" else "")
        self.log(f"{kind} {target}")

    async def heal_all(self) -> None:
        """Continue paused members, restart killed ones, drop every partition."""
        for nid in sorted(self._paused):
            m = self.group.members[nid]
            if m.running:
                assert m.proc is not None
                m.proc.send_signal(signal.SIGCONT)
            self.log(f"continue {nid}")
        self._paused.clear()
        for nid in sorted(self._killed):
            await asyncio.to_thread(self.group.restart, self.group.members[nid])
            self.log(f"restarted {nid}")
        self._killed.clear()
        if self._cut:
            await self.group.heal()
            self.log("healed partitions")
            self._cut = False


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Up to ``seconds``, less if ``stop`` is set: the length of a fault or a calm spell."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


def seeds_from_env(variable: str, default: str) -> list[int]:
    """The seeds an environment variable names: a list ``3,7``, ranges ``1-10``, or both."""
    out: list[int] = []
    for part in os.environ.get(variable, default).split(","):
        lo, _, hi = part.strip().partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out

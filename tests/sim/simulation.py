"""A deterministic simulation of a whole Raft cluster in one process, from one seed.

Everything random comes from ``random.Random(seed)``: the cluster size and settings, the
network (latency, drops, duplicates, reordering, rare long delays), FoundationDB-style
partitions (links cut one by one, then restored in random order; sometimes one-way),
crashes (sometimes in the middle of handling a Ready: only what was persisted survives)
and restarts, client proposals and reads, snapshots with log compaction, leadership
transfers and (in some seeds) membership changes: learners added, caught up and
promoted, voters and learners removed (a removed node is shut down once its removal is
committed, as an operator would).

Time is an integer clock; each node ticks every ~10 units (its own rate, within ±10%).
One *step* is one event (a tick, a delivery, a Ready handled) plus, sometimes, one fault
or client action. After every step :class:`~tests.sim.checker.Checker` checks Raft's
safety properties. :meth:`Simulation.run` ends by healing everything and waiting (a
bounded number of steps) until every live member has applied every acknowledged write.

Replay a failure with ``SEED=<seed> pytest tests/sim -k test_seed``.
"""
from __future__ import annotations

import heapq
import itertools
import json
import random
from collections import Counter, deque

from metadata.raft.config import RaftConfig
from metadata.raft.confchange import ConfChange, ConfChangeType
from metadata.raft.core import RaftNode
from metadata.raft.errors import ConfChangeRejected, NotLeader, ProposalDropped
from metadata.raft.messages import Message, MessageType
from metadata.raft.ready import Role
from metadata.raft.records import Entry, EntryKind
from metadata.raft.storage import MemoryStorage
from tests.sim.checker import Checker, SafetyViolation
from tests.sim.host import CRASH_BEFORE_PERSIST, CRASH_BEFORE_SEND, CRASH_MID_PERSIST, Host

TICK = 10
_TICK, _DELIVER, _READY, _RESTART, _SNAP_STATUS, _NEMESIS, _REJOIN = range(7)
_SNAP = MessageType.SNAP
_LEADER = Role.LEADER
_BUSY = (NotLeader, ProposalDropped)


class Simulation:
    def __init__(self, seed: int, steps: int = 2000, node_cls: type[RaftNode] = RaftNode,
                 membership: bool | None = None, lease_reads: bool | None = None) -> None:
        self.seed = seed
        self.steps = steps
        self.node_cls = node_cls
        rng = self.rng = random.Random(seed)
        n = rng.choice((3, 3, 5, 5, 4, 1)) if seed % 7 else 3
        self.membership = rng.random() < 0.4 if membership is None else membership
        lease = rng.random() < 0.2 if lease_reads is None else lease_reads
        check_quorum = lease or rng.random() < 0.85
        self.config = {
            "election_ticks": 10, "heartbeat_ticks": rng.choice((1, 2, 3)),
            "pre_vote": rng.random() < 0.85, "check_quorum": check_quorum, "lease_reads": lease,
            "max_msg_bytes": rng.choice((8, 64, 1 << 20)), "max_inflight_msgs": rng.choice((1, 2, 4, 64)),
            "max_apply_bytes": rng.choice((16, 1 << 20)),
            "lazy_commit": seed % 2 == 1,  # odd seeds: followers learn commits late, as the driver runs
        }
        self.drop_p = rng.choice((0.0, 0.01, 0.05, 0.15))
        self.dup_p = rng.choice((0.0, 0.02))
        self.max_latency = rng.choice((2, 5, 15))
        self.long_delay_p = rng.choice((0.0, 0.005))
        self.mid_ready_crash_p = rng.choice((0.0, 0.002))
        self.action_p = 0.12
        # The nemesis: soon after a new leader appears, sometimes isolate or crash it, so
        # that short-lived leaders leave entries on a minority (Figure 8 material).
        self.nemesis_p = rng.choice((0.0, 0.3, 0.6))
        self.leaders_seen = 0
        # (weight, action) for the random client and fault actions
        acts = [(40, self._propose), (10, self._read), (12, self._partition), (4, self._crash),
                (6, self._snapshot), (2, self._transfer)]
        if self.membership:
            acts.append((6, self._change_membership))
        self._actions = [a for w, a in acts for _ in range(w)]

        self.now = 0
        self.queue: list[tuple] = []
        self.seq = itertools.count()
        self.checker = Checker()
        ids = [f"n{i}" for i in range(1, n + 1)]
        self.n_initial = n
        self.next_id = n + 1
        self.disks: dict[str, MemoryStorage] = {i: MemoryStorage.bootstrapped(ids) for i in ids}
        self.hosts: dict[str, Host] = {}
        self.incarnation: dict[str, int] = {}
        self.tick_every: dict[str, int] = {}
        self.ready_pending: set[str] = set()
        self.crashed: set[str] = set()
        self.removed: set[str] = set()
        self.cut: set[tuple[str, str]] = set()
        self.cut_target = 0
        self.cutting = True
        self.proposals: dict[str, dict[int, tuple[int, bytes]]] = {}  # host -> index -> (term, data)
        self.reads: dict[bytes, tuple[str, int]] = {}  # ctx -> (host, max acked index when asked)
        self.counter = itertools.count(1)
        self.trace: deque[str] = deque(maxlen=60)
        self.events = 0
        self.healed = False
        self.stats: Counter[str] = Counter()  # what happened, to show the run was not vacuous
        for i in ids:
            self._start(i)

    # --- nodes ----------------------------------------------------------------------------

    def _start(self, nid: str) -> None:
        cfg = RaftConfig(nid, **self.config)
        host = Host(cfg, self.disks[nid], random.Random(self.rng.random()), self.node_cls)
        checker = self.checker
        host.on_ready = checker.on_ready
        host.on_apply = self._on_apply
        host.on_install = checker.on_install
        self.hosts[nid] = host
        inc = self.incarnation[nid] = self.incarnation.get(nid, 0) + 1
        self.tick_every[nid] = TICK + self.rng.randint(-1, 1)
        self.proposals[nid] = {}
        self._push(self.now + self.rng.randint(1, TICK), _TICK, nid, inc)

    def _kill(self, nid: str) -> None:
        self.hosts.pop(nid, None)
        self.ready_pending.discard(nid)
        self.proposals[nid] = {}  # the clients of a crashed node see errors, not acks

    def _on_apply(self, host: Host, e: Entry) -> None:
        self.checker.on_apply(host, e)
        p = self.proposals[host.id].pop(e.index, None)
        if p is not None and p[0] == e.term:
            if p[1] != e.data:
                raise SafetyViolation(f"{host.id} applied {e.data!r} where it proposed {p[1]!r} at {e.index}")
            self.checker.ack(e.index, e.data)
        if e.kind is EntryKind.CONF:
            if e.index > self.n_initial:  # not a bootstrap entry
                self.stats["conf entries applied"] += 1
            cc = ConfChange.decode(e.data)
            if cc.type is ConfChangeType.REMOVE and cc.node_id not in self.removed:
                self.removed.add(cc.node_id)  # committed: the operator shuts the node down
                self.trace.append(f"{self.now} removed {cc.node_id} (applied on {host.id})")
                self._kill(cc.node_id)
                self.crashed.discard(cc.node_id)

    # --- events ---------------------------------------------------------------------------

    def _push(self, at: int, kind: int, a: object, b: object = None) -> None:
        heapq.heappush(self.queue, (at, next(self.seq), kind, a, b))

    def _touched(self, nid: str) -> None:
        host = self.hosts.get(nid)
        if host is None:
            return
        self.checker.after_step(host)
        if len(self.checker.leader_of_term) != self.leaders_seen:
            self.stats["leaders elected"] += 1
            self.leaders_seen = len(self.checker.leader_of_term)
            if self.nemesis_p and host.node.role is _LEADER and self.rng.random() < self.nemesis_p:
                self._push(self.now + self.rng.randint(0, 3 * self.max_latency), _NEMESIS, nid,
                           self.incarnation[nid])
        if nid not in self.ready_pending and host.node.has_ready():
            self.ready_pending.add(nid)
            self._push(self.now + self.rng.choice((0, 0, 1, 2, 4)), _READY, nid, self.incarnation[nid])

    def _send(self, msgs) -> None:
        rng = self.rng
        for m in msgs:
            if (m.frm, m.to) in self.cut or m.to in self.removed or rng.random() < self.drop_p:
                if m.type is _SNAP:
                    self._push(self.now + 5, _SNAP_STATUS, m, False)
                elif (m.frm, m.to) in self.cut and rng.random() < 0.3:
                    host = self.hosts.get(m.frm)
                    if host is not None:
                        host.node.report_unreachable(m.to)
                continue
            if rng.random() < 0.03:
                m = self._round_trip(m)
            delay = rng.randint(1, self.max_latency)
            if self.long_delay_p and rng.random() < self.long_delay_p:
                delay += rng.randint(30, 300)
            self._push(self.now + delay, _DELIVER, m)
            if self.dup_p and rng.random() < self.dup_p:
                self._push(self.now + rng.randint(1, self.max_latency * 3), _DELIVER, m)
            if m.type is _SNAP:
                self.stats["snapshots sent"] += 1
                self._push(self.now + delay + 1, _SNAP_STATUS, m, True)

    @staticmethod
    def _round_trip(m: Message) -> Message:
        """Send ``m`` through its JSON wire form (snapshot data travels beside it)."""
        back = Message.decode(json.loads(json.dumps(m.encode())))
        if m.snapshot is not None:
            assert back.snapshot is not None and back.snapshot.meta == m.snapshot.meta
            back = Message(**{f: getattr(back, f) for f in Message.__slots__ if f != "snapshot"},
                           snapshot=m.snapshot)
        if back != m:
            raise SafetyViolation(f"message changed on the wire: {m} -> {back}")
        return back

    def _handle(self, ev: tuple) -> None:
        _, _, kind, a, b = ev
        if kind == _DELIVER:
            host = self.hosts.get(a.to)
            if host is not None:
                host.node.step(a)
                self._touched(a.to)
        elif kind == _TICK:
            if self.incarnation.get(a) == b and a in self.hosts:
                self.hosts[a].node.tick()
                self._touched(a)
                self._push(self.now + self.tick_every[a], _TICK, a, b)
        elif kind == _READY:
            self.ready_pending.discard(a)
            host = self.hosts.get(a)
            if host is not None and self.incarnation[a] == b and host.node.has_ready():
                crash_at = None
                if self.mid_ready_crash_p and self.rng.random() < self.mid_ready_crash_p:
                    crash_at = self.rng.choice((CRASH_BEFORE_PERSIST, CRASH_MID_PERSIST, CRASH_BEFORE_SEND))
                if host.process_ready(self._send, crash_at):
                    self._serve_reads(host)
                    self._touched(a)
                else:
                    self.trace.append(f"{self.now} crash {a} at {crash_at}")
                    self.stats["crashes in a ready"] += 1
                    self._crash_host(a)
        elif kind == _RESTART:
            if a in self.crashed and a not in self.removed:
                self.crashed.discard(a)
                self.trace.append(f"{self.now} restart {a}")
                self._start(a)
        elif kind == _NEMESIS:
            if a in self.hosts and self.incarnation[a] == b and not self.healed:
                if self.rng.random() < 0.5:
                    self.trace.append(f"{self.now} nemesis crashes {a}")
                    self._crash_host(a)
                else:
                    self.trace.append(f"{self.now} nemesis isolates {a}")
                    links = [(x, y) for o in sorted(set(self.disks) - self.removed - {a})
                             for x, y in ((a, o), (o, a)) if (x, y) not in self.cut]
                    self.cut.update(links)
                    self._push(self.now + self.rng.randint(50, 400), _REJOIN, a, links)
        elif kind == _REJOIN:
            self.trace.append(f"{self.now} nemesis rejoins {a}")
            self.cut.difference_update(b)
        elif kind == _SNAP_STATUS:
            host = self.hosts.get(a.frm)
            if host is not None:
                host.node.report_snapshot(a.to, b and a.to in self.hosts)
                self._touched(a.frm)

    def _serve_reads(self, host: Host) -> None:
        for rs in host.read_states:
            asked = self.reads.pop(rs.ctx, None)
            if asked is not None:
                self.checker.check_read(host.id, rs.index, asked[1])
        host.read_states.clear()

    # --- actions --------------------------------------------------------------------------

    def _live(self) -> list[str]:
        return sorted(self.hosts)

    def _leader_host(self) -> Host | None:
        best = None
        for h in self.hosts.values():
            if h.node.role is _LEADER and (best is None or h.node.term > best.node.term):
                best = h
        return best

    def _pick_target(self) -> Host | None:
        """The leader most of the time (clients follow redirects), any node otherwise."""
        if self.rng.random() < 0.8:
            h = self._leader_host()
            if h is not None:
                return h
        live = self._live()
        return self.hosts[self.rng.choice(live)] if live else None

    def _propose(self) -> None:
        host = self._pick_target()
        if host is None:
            return
        data = b"%d:%d" % (self.seed, next(self.counter))
        try:
            index, term = host.node.propose(data)
        except _BUSY:
            return
        self.proposals[host.id][index] = (term, data)
        self._touched(host.id)

    def _read(self) -> None:
        host = self._pick_target()
        if host is None:
            return
        ctx = b"r%d" % next(self.counter)
        try:
            host.node.read_index(ctx)
        except _BUSY:
            return
        self.reads[ctx] = (host.id, self.checker.max_acked)
        self._touched(host.id)

    def _partition(self) -> None:
        rng = self.rng
        nodes = sorted(set(self.disks) - self.removed)
        if self.cutting and len(self.cut) < self.cut_target and len(nodes) > 1:
            a, b = rng.sample(nodes, 2)
            if rng.random() < 0.15:  # isolate a node entirely
                for o in nodes:
                    if o != a:
                        self.cut.update(((a, o), (o, a)))
            elif rng.random() < 0.2:
                self.cut.add((a, b))  # one way
            else:
                self.cut.update(((a, b), (b, a)))
            self.trace.append(f"{self.now} cut {a}-{b} ({len(self.cut)} links cut)")
        elif self.cut:
            self.cutting = False
            link = rng.choice(sorted(self.cut))
            self.cut.discard(link)
            self.trace.append(f"{self.now} restore {link}")
        else:
            self.cutting = True
            self.cut_target = rng.choice((0, 1, 2, 4, 8))

    def _crash(self) -> None:
        live = self._live()
        if len(live) <= 1:
            return
        nid = self.rng.choice(live)
        self.trace.append(f"{self.now} crash {nid}")
        self._crash_host(nid)

    def _crash_host(self, nid: str) -> None:
        self.stats["crashes"] += 1
        self._kill(nid)
        self.crashed.add(nid)
        self._push(self.now + self.rng.randint(20, 400), _RESTART, nid)

    def _snapshot(self) -> None:
        live = self._live()
        if live:
            host = self.hosts[self.rng.choice(live)]
            if host.take_snapshot(keep=self.rng.choice((0, 2, 20))):
                self.trace.append(f"{self.now} snapshot {host.id} at {host.fsm_index}")

    def _transfer(self) -> None:
        host = self._leader_host()
        if host is not None:
            voters = sorted(host.node.voters - {host.id})
            if voters:
                to = self.rng.choice(voters)
                host.node.transfer_leadership(to)
                self.trace.append(f"{self.now} transfer {host.id} -> {to}")
                self._touched(host.id)

    def _change_membership(self) -> None:
        host = self._leader_host()
        if host is None:
            return
        node, rng = host.node, self.rng
        cs = node.conf_state
        options: list[ConfChange] = []
        if len(cs.members()) < 7 and len(self.disks) < 12:
            options.append(ConfChange(ConfChangeType.ADD_LEARNER, f"n{self.next_id}"))
        caught_up = [lid for lid in sorted(cs.learners) if node.progress[lid].match >= node.log.committed]
        if caught_up and len(cs.voters) < 5:
            options.append(ConfChange(ConfChangeType.ADD_VOTER, rng.choice(caught_up)))
        if len(cs.voters) > 3 or (len(cs.voters) > 1 and rng.random() < 0.1):
            options.append(ConfChange(ConfChangeType.REMOVE, rng.choice(sorted(cs.voters))))
        if cs.learners:
            options.append(ConfChange(ConfChangeType.REMOVE, rng.choice(sorted(cs.learners))))
        if not options:
            return
        cc = rng.choice(options)
        try:
            node.propose_conf_change(cc)
        except (*_BUSY, ConfChangeRejected):
            return
        self.trace.append(f"{self.now} {host.id} proposes {cc.type.value} {cc.node_id}")
        self.stats[f"{cc.type.value} proposed"] += 1
        if cc.type is ConfChangeType.ADD_LEARNER:
            self.next_id += 1
            self.disks[cc.node_id] = MemoryStorage()  # joins empty, waits for the leader
            self._start(cc.node_id)
        self._touched(host.id)

    # --- running --------------------------------------------------------------------------

    def step(self, faults: bool = True) -> None:
        if self.queue:
            ev = heapq.heappop(self.queue)
            self.now = ev[0]
            self.events += 1
            self._handle(ev)
        if faults and self.rng.random() < self.action_p:
            self.rng.choice(self._actions)()

    def heal(self) -> None:
        self.healed = True
        self.cut.clear()
        self.cutting, self.cut_target = True, 0
        self.drop_p = self.dup_p = self.long_delay_p = self.mid_ready_crash_p = 0.0
        for nid in sorted(self.crashed - self.removed):
            self.crashed.discard(nid)
            self._start(nid)

    def converged(self) -> bool:
        leader = self._leader_host()
        if leader is None:
            return False
        target = self.checker.max_acked
        members = leader.node.conf_state.members()
        return all(self.hosts[m].fsm_index >= target for m in members if m in self.hosts) and \
            all(m in self.hosts for m in members)

    def run(self, settle_steps: int = 40_000) -> None:
        try:
            for _ in range(self.steps):
                self.step()
            self.heal()
            for i in range(settle_steps):
                self.step(faults=False)
                if i % 64 == 0 and self.converged():
                    break
            else:
                raise SafetyViolation(f"no convergence {settle_steps} steps after healing: "
                                      f"{self.describe_nodes()}")
        except AssertionError as exc:
            raise SafetyViolation(self.report(exc)) from exc

    def describe_nodes(self) -> str:
        parts = []
        for nid in sorted(self.hosts):
            n = self.hosts[nid].node
            parts.append(f"{nid}: {n.role.value} term {n.term} lead {n.lead or '-'} commit {n.log.committed} "
                         f"last {n.log.last_index()} applied {self.hosts[nid].fsm_index} "
                         f"voters {sorted(n.voters)} learners {sorted(n.learners)}")
        return "; ".join(parts)

    def report(self, exc: BaseException) -> str:
        return (f"seed {self.seed} failed at time {self.now} after {self.events} events: {exc}\n"
                f"  replay: SEED={self.seed} python -m pytest tests/sim -k test_seed\n"
                f"  config: {self.config} nodes {sorted(self.disks)} membership {self.membership} "
                f"drop {self.drop_p} dup {self.dup_p}\n"
                f"  nodes: {self.describe_nodes()}\n  recent: " + "\n    ".join(self.trace))

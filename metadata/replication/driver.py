"""The asyncio driver of the Raft core: :class:`RaftReplicator`, the replicated
:class:`~metadata.replication.replicator.Replicator` of a metadata node, whatever the
size of its group (a single node is a group whose only voter is itself).

One loop task owns the core (:class:`metadata.raft.RaftNode`) and follows the driver
contract of :mod:`metadata.raft`: a timer ticks it, HTTP handlers step incoming
messages, proposals and reads enter it, and every Ready is handled in order (send the
early messages, install a snapshot, append the entries durably, write the hard state,
send the messages, apply the committed entries, serve confirmed reads, advance).

Invariants:
- Group commit: proposals arriving while a Ready is being made durable accumulate in the
  core and go out in the next Ready, so one fsync covers all of them; nothing is sent
  that promises durability (votes, acknowledgements) before that fsync.
- A proposal's caller gets the outcome of the entry applied at its (index, term). An
  entry applied at that index with another term, or the loss of leadership while it
  waits, answers NotLeader (503, "retry"): the command may or may not have been applied,
  and the client's retry with the same session seq applies it at most once. Never a
  false success.
- Replies: a peer's batch that asks for them (``step_and_reply``) is answered with
  every message for that peer made until the first Ready taken after the step has been
  handled (so an acknowledgement leaves only once its entries are durable); meanwhile
  no message for that peer goes through the transport, so none travels both ways.
- Reads: ``read(fn)`` runs ``fn`` on the state machine once it has applied the read
  index confirmed by a heartbeat round (ReadIndex); every read that arrived during one
  loop turn shares one round. Followers answer writes and reads with NotLeader naming the
  leader's address.
- Snapshots of the state machine are taken every :func:`snapshot_interval` applied entries
  (``snapshot_every``, or a sixteenth of the records held when that is more: a snapshot
  costs time in proportion to the state, so spacing them in proportion too keeps its
  share of each commit flat as the index grows, and bounds the log replayed on restart to
  a sixteenth of the state); frozen on the loop, written in a thread, then the log is
  compacted behind the older of the two kept snapshots, and the heap settled
  (:func:`metadata.heap.settle`: what the index grew since is frozen out of the cyclic
  collector's reach). A follower too far behind receives the newest snapshot.
- A node that distrusts its storage (``recovering``, see
  :mod:`metadata.storage.recovery`) neither ticks nor votes until caught up.
- A storage failure stops the driver (fail-stop): every later request gets 503.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from metadata.api.commands import Command, Noop, Outcome, decode_logged_command, encode_command
from metadata.fsm.machine import MetadataFSM
from metadata import heap, latency_trace
from metadata.fsm.snapshot import freeze
from metadata.raft import (
    ConfChange, ConfChangeRejected, ConfChangeType, EntryKind, Message, MessageType, NotLeader, ProposalDropped,
    RaftConfig, RaftNode, Ready, Role, Snapshot, SnapshotMeta, TransferRejected,
)
from metadata.replication.reads import PendingReads
from metadata.replication.transport import RaftTransport, SnapshotReceiver
from metadata.storage import files
from metadata.storage.migrate import migrate_single_node
from metadata.storage.recovery import Opened, conf_addresses, open_storage
from objstore import errors
from objstore.errors import InvalidArgument, ObjstoreError, ServiceUnavailable
from objstore.tls import client_context

log = logging.getLogger(__name__)

T = TypeVar("T")
TICK_TIMES_KEPT = 256  # ticks whose time is remembered (a lease is younger than election_ticks)
# CLOCK_BOOTTIME runs while the process is stopped and while the host is suspended;
# CLOCK_MONOTONIC stops during a suspend, which would stretch a lease.
_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


def _lease_clock() -> float:
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()

_VOTES = (MessageType.VOTE, MessageType.PRE_VOTE, MessageType.TIMEOUT_NOW)
MAX_COMMAND_BYTES = 8 << 20  # base64 in a message batch stays well below metadata.app.MAX_BODY
# The snapshot's encoding thread sleeps this long after each line of records (a few ms of
# encoding), so requests on the loop wait for the GIL at most that long (a listing page
# measured while a 1M-object snapshot was encoded had waited for it).
SNAPSHOT_PAUSE_S = 0.001
SNAPSHOT_STATE_SHARE = 16  # at most one snapshot per (records held / this) applied entries
# A leader writes batches of up to this many entries on its loop's thread (see DiskLog.inline).
LEADER_INLINE_ENTRIES = 8


def snapshot_interval(every: int, records: int) -> int:
    """Applied entries between two snapshots of a state holding ``records`` object keys:
    ``every``, or ``records / SNAPSHOT_STATE_SHARE`` when larger (see the module docstring)."""
    return max(every, records // SNAPSHOT_STATE_SHARE)


@dataclass(frozen=True)
class RaftSettings:
    tick_seconds: float = 0.05
    election_ticks: int = 12
    heartbeat_ticks: int = 2
    snapshot_every: int = 10_000
    segment_bytes: int = 64 << 20
    chunk_bytes: int = 1 << 20
    propose_timeout: float = 5.0
    read_timeout: float = 3.0
    tls_ca: str = ""  # peers are called over HTTPS, verified against this CA bundle ("" plain HTTP)
    lazy_commit: bool = True  # followers learn a new commit index with the next APP or heartbeat
    # Lease reads (see docs/architecture.md, "Lease reads"): the leader answers a read from
    # its commit index without a heartbeat round while a quorum acknowledged a heartbeat it
    # sent less than lease_ticks ago, timed by _lease_clock. Every member must agree.
    lease_reads: bool = False


class LeaderBusy(ServiceUnavailable):
    """The leader cannot accept this proposal right now (the core dropped it); retry shortly."""

    default_message = "The metadata leader cannot accept this proposal right now. Please retry."


def parse_peers(peers: "tuple[str, ...] | list[str]") -> dict[str, str]:
    """``["m1=h:p", ...]`` as ``{"m1": "h:p"}``; raises InvalidArgument."""
    out: dict[str, str] = {}
    for p in peers:
        nid, sep, addr = p.partition("=")
        if not sep or not nid or ":" not in addr:
            raise InvalidArgument(f"bad peer {p!r}: expected id=host:port")
        out[nid.strip()] = addr.strip()
    return out


def _consume(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()  # mark retrieved: a waiter may have timed out and gone


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _expire(fut: asyncio.Future, message: str) -> None:
    if not fut.done():
        fut.set_exception(ServiceUnavailable(message))


def _expire_all(futs: "list[asyncio.Future]", message: str) -> None:
    for fut in futs:
        _expire(fut, message)


PROPOSE_TIMED_OUT = "the command was not committed in time; retry"


async def _wait(fut: asyncio.Future, timeout: float, message: str) -> Any:
    """The result of ``fut``, or ServiceUnavailable(``message``) after ``timeout`` seconds:
    a timer on the future itself (``asyncio.wait_for`` costs a task per call, and these
    are on every proposal and read). A caller cancelled meanwhile cancels ``fut``, which
    whoever would have resolved it skips (they check ``done()``)."""
    timer = asyncio.get_running_loop().call_later(timeout, _expire, fut, message)
    try:
        return await fut
    finally:
        timer.cancel()


class RaftReplicator:
    """A Raft member's replicated state machine (see the module docstring)."""

    def __init__(self, node_id: str, address: str, secret: str, opened: Opened, settings: RaftSettings,
                 rng: random.Random | None = None) -> None:
        self.id = node_id
        self.address = address
        self.settings = settings
        self.storage = opened.storage
        self.fsm: MetadataFSM = opened.fsm
        # Where each member listens: the Raft configuration's record (the address each was
        # added at, from the log and snapshots), then ``--peers`` for ids it does not name.
        self.addresses = {**opened.addresses, node_id: address}
        self.recovering_until = opened.recovering_until
        self.storage_notes = list(opened.notes)
        cfg = RaftConfig(node_id, election_ticks=settings.election_ticks, heartbeat_ticks=settings.heartbeat_ticks,
                         pre_vote=True, check_quorum=True, lazy_commit=settings.lazy_commit,
                         lease_reads=settings.lease_reads)
        self.node = RaftNode(cfg, self.storage, rng or random.Random())
        # When each recent tick was counted, by a clock that also runs while the process is
        # paused or its host suspended (lease reads: see _lease_holds).
        self._tick_times: dict[int, float] = {self.node.ticks: _lease_clock()}
        self._lease_seconds = cfg.lease_ticks * settings.tick_seconds
        self.node.lease_clock = self._lease_holds
        self.transport = RaftTransport(node_id, address, secret, self.addresses.get, self._on_unreachable,
                                       self._on_snapshot_sent, chunk_bytes=settings.chunk_bytes,
                                       tls=client_context(settings.tls_ca), on_reply=self._on_reply)
        self.receiver = SnapshotReceiver(self.storage.incoming, self.storage.snapshots)
        self.snapshots_installed = 0
        self.leader_changes = 0
        # Observers for metrics (seconds of a committed-and-applied proposal, of a confirmed read).
        self.on_proposed: Callable[[float], None] | None = None
        self.on_read: Callable[[float], None] | None = None
        self._waiters: dict[int, tuple[int, asyncio.Future, Command | None]] = {}
        self._reads = PendingReads(node_id)
        self._wake = asyncio.Event()
        self._role = Role.FOLLOWER
        self._leader = ""
        self._snap_task: asyncio.Task | None = None
        self._snap_attempt = 0  # applied index of the last snapshot attempt
        self._lost_notice_at = 0.0  # monotonic time before which no new lost-entries notice goes out
        self.lost_notices: dict[str, float] = {}  # as a leader: follower -> when it reported lost entries
        self._tasks: list[asyncio.Task] = []
        self._failed: BaseException | None = None
        self._closed = False
        self._was_member = node_id in self.node.conf_state.members()
        # Replies in the response (see step_and_reply): peer -> (Readies taken when the
        # slot opened, messages for that peer gathered meanwhile, future of the handler).
        self._reply_slots: dict[str, tuple[int, list[Message], asyncio.Future]] = {}
        self._readies = 0  # Readies taken so far
        # Start-up replay: the commit index known on opening, and when the opening began.
        self._replay_to = (self.node.log.committed, time.perf_counter())
        # Log writes and fsyncs run on the loop's thread (see _handle; a leader's small
        # batches only, _on_soft_state): no thread hand-over on either side of the fsync.
        self.storage.dlog.inline = True

    @classmethod
    async def open(cls, node_id: str, data_dir: Path | str, secret: str, peers: dict[str, str], join: bool,
                   address: str, settings: RaftSettings = RaftSettings()) -> "RaftReplicator":
        """Open the node's storage (bootstrapping a new cluster from ``peers`` unless
        ``join``) and start its loop and timer."""
        if not join and node_id not in peers:
            raise InvalidArgument(f"--peers must name this node ({node_id}) unless it joins with --join")
        data_dir = Path(data_dir)
        single = not join and set(peers) == {node_id}
        if single:
            await migrate_single_node(data_dir, node_id, peers[node_id], settings.segment_bytes)
        opened = await open_storage(data_dir, peers, join, settings.segment_bytes, only_copy=single)
        try:
            rep = cls(node_id, address, secret, opened, settings)
        except BaseException:
            await opened.storage.close()
            raise
        rep._tasks = [asyncio.create_task(rep._run(), name=f"raft-loop {node_id}"),
                      asyncio.create_task(rep._ticker(), name=f"raft-tick {node_id}")]
        st = rep.node.status()
        log.info("raft node %s: term %d, commit %d, log %d..%d, snapshot %d, voters %s%s", node_id, st.term,
                 st.commit, st.first_index, st.last_index, rep.storage.snapshot_meta.index,
                 ",".join(sorted(st.conf_state.voters)) or "-",
                 f", recovering until {rep.recovering_until}" if rep.recovering_until else "")
        return rep

    # --- Replicator -----------------------------------------------------------------------

    async def propose(self, cmd: Command) -> Outcome:
        started = time.perf_counter()
        index, fut = self._append(cmd)
        outcome = await _wait(fut, self.settings.propose_timeout, PROPOSE_TIMED_OUT)
        latency_trace.event("W", index)
        if self.on_proposed is not None:
            self.on_proposed(time.perf_counter() - started)
        return outcome

    async def propose_all(self, cmds: "list[Command | ObjstoreError]") -> "list[Outcome | ObjstoreError]":
        """Each command's outcome, or the error it failed with (an error given in place of
        a command is handed back as it is): what ``asyncio.gather`` of :meth:`propose`
        over them gives, each bounded by ``propose_timeout`` likewise, but without a task,
        a timer and four coroutines per command. All are appended before any is waited
        for, in order, so they share a Raft batch."""
        started = time.perf_counter()
        waits: list[tuple[int, asyncio.Future] | ObjstoreError] = []
        for cmd in cmds:
            if isinstance(cmd, ObjstoreError):
                waits.append(cmd)
                continue
            try:
                waits.append(self._append(cmd))
            except ObjstoreError as err:
                waits.append(err)
        futs = [w[1] for w in waits if not isinstance(w, ObjstoreError)]
        timer = asyncio.get_running_loop().call_later(
            self.settings.propose_timeout, _expire_all, futs, PROPOSE_TIMED_OUT) if futs else None
        out: list[Outcome | ObjstoreError] = []
        try:
            for w in waits:
                if isinstance(w, ObjstoreError):
                    out.append(w)
                    continue
                index, fut = w
                try:
                    out.append(await fut)
                except ObjstoreError as err:
                    out.append(err)
                    continue
                latency_trace.event("W", index)
                if self.on_proposed is not None:
                    self.on_proposed(time.perf_counter() - started)
        finally:
            if timer is not None:
                timer.cancel()
            for fut in futs:  # the caller went away: whoever would resolve them skips them
                if not fut.done():
                    fut.cancel()
        return out

    def _append(self, cmd: Command) -> tuple[int, asyncio.Future]:
        """Append ``cmd`` to the log; (its index, the future of its outcome)."""
        self._check_serving()
        data = encode_command(cmd)
        if len(data) > MAX_COMMAND_BYTES:  # it must fit one Raft message to every follower
            raise InvalidArgument(f"command of {len(data)} bytes exceeds {MAX_COMMAND_BYTES}")
        index, term = self._propose_raw(lambda: self.node.propose(data))
        latency_trace.event("P", index)
        return index, self._waiter(index, term, cmd)

    async def propose_conf_change(self, cc: ConfChange) -> None:
        """Append a membership change and wait until it is applied here."""
        self._check_serving()
        if cc.context and cc.type is not ConfChangeType.REMOVE:
            self._learn_addresses({cc.node_id: cc.context.decode()})
        index, term = self._propose_raw(lambda: self.node.propose_conf_change(cc))
        await self._wait_applied(index, term, None)

    async def read(self, fn: Callable[[MetadataFSM], T]) -> T:
        self._check_serving()
        if self.node.role is not Role.LEADER:
            raise self.not_leader()
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        started = time.perf_counter()
        self._reads.add(fut)
        self._wake.set()
        await _wait(fut, self.settings.read_timeout, "leadership could not be confirmed in time; retry")
        if self.on_read is not None:
            self.on_read(time.perf_counter() - started)
        return fn(self.fsm)

    def status(self) -> dict[str, Any]:
        st = self.node.status()
        role = st.role.value
        if self._failed is not None:
            role = "failed"
        elif self.removed:
            role = "removed"
        snap = self.storage.snapshot_meta
        dlog = self.storage.dlog
        members = {nid: {"address": self.addresses.get(nid, ""),
                         "voter": nid in st.conf_state.voters} for nid in sorted(st.conf_state.members())}
        return {
            "node_id": self.id, "address": self.address, "role": role, "leader": st.leader or None,
            "leader_address": self.addresses.get(st.leader) if st.leader else None, "term": st.term,
            "vote": st.vote, "commit_index": st.commit, "applied_index": self.fsm.applied_index,
            "log_first_index": st.first_index, "log_last_index": st.last_index, "log_bytes": dlog.disk_bytes(),
            "last_snapshot_index": snap.index, "last_snapshot_term": snap.term,
            "snapshots_installed": self.snapshots_installed, "snapshots_sent": self.transport.snapshots_sent,
            "snapshot_chunks_received": self.receiver.received, "leader_changes": self.leader_changes,
            "recovering_until": self.recovering_until, "members": members,
            "progress": {k: v for k, v in st.progress.items()}, "fsyncs": dlog.fsyncs,
            "entries_written": dlog.appended,
            "replication": "single" if st.conf_state.voters == {self.id} else "raft", **self.fsm.counts(),
        }

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._snap_task is not None:
            await asyncio.gather(self._snap_task, return_exceptions=True)
        self._fail_waiters(lambda: ServiceUnavailable("metadata node shut down"))
        self._close_replies(None)
        await self.transport.close()
        self.receiver.close()
        await self.storage.close()

    # --- used by the HTTP routes (metadata.replication.http) --------------------------------

    def step_messages(self, msgs: "list[Message]") -> None:
        """Feed messages from the network into the core."""
        self._check_running()
        for m in msgs:
            if self.recovering_until:
                if m.type in _VOTES:
                    continue  # we may have lost acknowledged entries: no say in elections yet
                if m.type is MessageType.HEARTBEAT and m.commit > self.node.log.last_index():
                    m = self._lost_entries(m)
            try:
                self.node.step(m)
            except AssertionError as exc:  # a broken Raft invariant: stop rather than go on
                log.exception("raft node %s: invariant broken by %s from %s", self.id, m.type.value, m.frm)
                self._stop_on(exc)
                raise ServiceUnavailable(f"metadata node {self.id} stopped: {exc}") from None
        self._wake.set()

    async def step_and_reply(self, frm: str, msgs: "list[Message]", timeout: float = 1.0) -> "list[Message]":
        """Step ``msgs`` from ``frm``, then return this node's messages for ``frm`` that
        they led to (an acknowledgement once the entries are durable, a heartbeat or vote
        answer), gathered until the first Ready taken after the step has been handled:
        the caller answers them in the HTTP response, which saves ``frm`` a request back.
        Messages for ``frm`` made while the reply is open all go that way (never both
        ways); after ``timeout`` seconds the reply closes with what it has and later ones
        travel by the transport as usual."""
        old = self._reply_slots.pop(frm, None)
        if old is not None and not old[2].done():
            old[2].set_result(None)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        slot: tuple[int, list[Message], asyncio.Future] = (self._readies, [], fut)
        self._reply_slots[frm] = slot
        try:
            self.step_messages(msgs)
            timer = asyncio.get_running_loop().call_later(timeout, _resolve, fut)
            try:
                await fut
            finally:
                timer.cancel()
        finally:
            if self._reply_slots.get(frm) is slot:
                del self._reply_slots[frm]
        return slot[1] if self._failed is None and not self._closed else []

    def _close_replies(self, taken_before: int | None) -> bool:
        """Release the replies opened before Ready number ``taken_before`` was taken
        (None: all of them); whether any was."""
        released = False
        for frm, (opened, _, fut) in list(self._reply_slots.items()):
            if taken_before is None or opened < taken_before:
                del self._reply_slots[frm]
                if not fut.done():
                    fut.set_result(None)
                    released = True
        return released

    def _on_reply(self, frm: str, msgs: "list[Message]") -> None:
        """Messages a peer answered with in the response to our batch."""
        try:
            self.step_messages(msgs)
        except ServiceUnavailable:
            pass  # stopped or shutting down: nothing more to do with them

    def _lost_entries(self, m: Message) -> Message:
        """A heartbeat from a leader that believes we hold entries we lost (our damaged log
        was cut): take its commit index only as far as our log goes, and ask it to hand
        leadership over, since a new leader starts by probing where every log ends (the
        core never lowers what a leader believes a follower holds)."""
        last = self.node.log.last_index()
        now = time.monotonic()
        if now >= self._lost_notice_at:
            self._lost_notice_at = now + 4 * self.settings.tick_seconds * self.settings.election_ticks
            log.warning("raft node %s: leader %s believes we hold entries up to %d, we have %d: asking it to "
                        "hand over leadership", self.id, m.frm, m.commit, last)
            self.transport.send_lost_notice(m.frm, last)
        return dataclasses.replace(m, commit=last)

    def sender_address(self, frm: str, address: str) -> None:
        """Where ``frm`` says it listens (authenticated traffic), kept only for a node whose
        address is not known otherwise (a joining node learning of its peers): the address
        a member was added at, recorded in the Raft configuration, wins."""
        if frm != self.id and frm not in self.addresses:
            self.addresses[frm] = address

    def not_leader(self) -> errors.NotLeader:
        """The service error for a request this node cannot serve as leader (names the
        leader's address when known)."""
        lead = self.node.lead
        addr = self.addresses.get(lead) if lead and lead != self.id else None
        return errors.NotLeader(f"metadata node {self.id} is not the leader", leader=addr)

    @contextlib.contextmanager
    def core_errors(self) -> Iterator[None]:
        """Map the Raft core's errors (:mod:`metadata.raft.errors`) to the service's:
        NotLeader -> NotLeader naming the leader's address, ProposalDropped -> LeaderBusy
        (503, retry), ConfChangeRejected / TransferRejected -> InvalidArgument."""
        try:
            yield
        except NotLeader:
            raise self.not_leader() from None
        except ProposalDropped as exc:
            raise LeaderBusy(str(exc)) from None
        except (ConfChangeRejected, TransferRejected) as exc:
            raise InvalidArgument(str(exc)) from None

    def transfer_leadership(self, to: str) -> None:
        """Ask the core to hand leadership to voter ``to``; raises NotLeader or InvalidArgument."""
        with self.core_errors():
            self.node.transfer_leadership(to)
        self._wake.set()

    def wake(self) -> None:
        """Let the loop look at the core again (after a direct call into it)."""
        self._wake.set()

    def is_leader(self) -> bool:
        return self.node.role is Role.LEADER

    async def wait_until(self, pred: Callable[[], bool], timeout: float) -> bool:
        """Poll ``pred`` every tick until it holds (True) or ``timeout`` passes (False)."""
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() >= end or self._failed is not None or self._closed:
                return False
            await asyncio.sleep(self.settings.tick_seconds)
        return True

    # --- internals: requests ----------------------------------------------------------------

    @property
    def removed(self) -> bool:
        """Whether the configuration in force no longer lists this node, which was a member
        (the core lets it stand in elections until it knows the change committed; it
        serves no requests)."""
        if not self._was_member:
            return False
        cs = self.node.conf_state  # (members() builds a set: this runs on every proposal)
        return self.id not in cs.voters and self.id not in cs.learners

    def _check_running(self) -> None:
        if self._closed:
            raise ServiceUnavailable("metadata node is shutting down")
        if self._failed is not None:
            raise ServiceUnavailable(f"metadata node stopped after a storage failure: {self._failed}")

    def _check_serving(self) -> None:
        self._check_running()
        if self.removed:
            raise self.not_leader()

    def _propose_raw(self, append: Callable[[], tuple[int, int]]) -> tuple[int, int]:
        if self.node.role is not Role.LEADER:
            raise self.not_leader()
        with self.core_errors():
            index, term = append()
        self._wake.set()
        return index, term

    def _waiter(self, index: int, term: int, cmd: Command | None) -> asyncio.Future:
        """The future of the entry at (index, term), resolved when it is applied."""
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        self._waiters[index] = (term, fut, cmd)
        return fut

    async def _wait_applied(self, index: int, term: int, cmd: Command | None) -> Any:
        return await _wait(self._waiter(index, term, cmd), self.settings.propose_timeout, PROPOSE_TIMED_OUT)

    def _fail_waiters(self, err: Callable[[], ObjstoreError]) -> None:
        for _, fut, _ in self._waiters.values():
            if not fut.done():
                fut.set_exception(err())
        self._waiters.clear()
        self._reads.fail(err)

    def _on_unreachable(self, peer: str) -> None:
        if not self._closed and self._failed is None:
            self.node.report_unreachable(peer)
            self._wake.set()

    def _on_snapshot_sent(self, peer: str, ok: bool) -> None:
        if not self._closed and self._failed is None:
            self.node.report_snapshot(peer, ok)
            self._wake.set()

    def _learn_addresses(self, found: dict[str, str]) -> None:
        if found:
            self.addresses.update(found)
            self.addresses[self.id] = self.address

    # --- internals: the loop ----------------------------------------------------------------

    def _eager_campaign_tick(self) -> int:
        """When to campaign without waiting for an election timeout (0: never): at once for
        the only voter; after two ticks for the first voter of a brand-new cluster (term 1,
        no vote yet), which saves a whole timeout on every fresh start."""
        voters = self.node.conf_state.voters
        if self.recovering_until or self.id not in voters:
            return 0
        if voters == {self.id}:
            return 1
        if self.node.term == 1 and not self.node.vote and self.id == min(voters):
            return 2
        return 0

    async def _ticker(self) -> None:
        n = 0
        eager = self._eager_campaign_tick()
        while True:
            await asyncio.sleep(self.settings.tick_seconds)
            if self._failed is not None:
                return
            if not self.recovering_until:
                self.node.tick()
                self._note_tick()
            n += 1
            if n == eager and not self.node.lead and self.node.role is Role.FOLLOWER:
                self.node.campaign()
            if n % 200 == 0:  # forget read rounds whose callers all gave up
                self._reads.prune()
            self._wake.set()

    def _note_tick(self) -> None:
        ticks = self.node.ticks
        self._tick_times[ticks] = _lease_clock()
        self._tick_times.pop(ticks - TICK_TIMES_KEPT, None)

    def _lease_holds(self, sent_at: int) -> bool:
        """Whether a lease from the heartbeat round stamped with tick ``sent_at`` still holds
        by the clock: the round left no earlier than that tick was counted, so the lease
        ends ``lease_ticks`` tick lengths after that moment, however few ticks the loop has
        counted since (a paused process or a stalled loop counts too few)."""
        at = self._tick_times.get(sent_at)
        return at is not None and _lease_clock() < at + self._lease_seconds

    async def _run(self) -> None:
        try:
            while self._failed is None:
                await self._wake.wait()
                self._wake.clear()
                self._reads.start_round(self.node.read_index, self.not_leader)
                while self.node.has_ready():
                    rd = self.node.ready()
                    if rd.entries:
                        latency_trace.event("R", rd.entries[-1].index)
                    self._readies += 1
                    taken = self._readies
                    await self._handle(rd)
                    self.node.advance(rd)
                    self._after_advance()
                    self._close_replies(taken)
                    # A round just confirmed frees the way for the reads that waited on it.
                    self._reads.start_round(self.node.read_index, self.not_leader)
                if self._reply_slots:
                    self._close_replies(None)  # what was stepped led to nothing more
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - fail-stop on any storage or invariant failure
            log.exception("raft node %s stopped", self.id)
            self._stop_on(exc)

    def _stop_on(self, exc: BaseException) -> None:
        self._failed = exc
        self._close_replies(None)
        message = f"metadata node {self.id} stopped: {exc}"
        self._fail_waiters(lambda: ServiceUnavailable(message))
        self._wake.set()

    async def _handle(self, rd: Ready) -> None:
        self._send(rd.early_messages)
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.leader, rd.soft_state.role)
        if rd.snapshot is not None:
            await self._install(rd.snapshot)
        if rd.entries:
            self._learn_addresses(conf_addresses(rd.entries))
            # A leader's APPs (early_messages) are on the wire before its own write starts:
            # the transport's senders were woken first and write to their connections in
            # their first step, ahead of the log's writer task, whose write and fsync then
            # hold the loop (DiskLog.inline) while the followers write theirs.
            await self.storage.append(rd.entries)
            latency_trace.event("F", rd.entries[-1].index)
        if rd.hard_state is not None:
            await self.storage.set_hard_state(rd.hard_state, sync=False)
        self._send(rd.messages)
        if rd.committed_entries and self._close_replies(self._readies):
            # The answers held for peers are complete (the entries are durable; applying
            # adds no message): let them leave before the entries are applied, which a
            # follower's acknowledgement, and so the leader's commit, need not wait for.
            await asyncio.sleep(0)
        self._apply(rd)
        if rd.committed_entries:
            latency_trace.event("C", rd.committed_entries[-1].index)
        self._reads.confirmed(rd.read_states, self.fsm.applied_index)

    def _send(self, msgs: "tuple[Message, ...]") -> None:
        if not msgs:
            return
        plain = []
        slots = self._reply_slots
        for m in msgs:
            if m.type is MessageType.SNAP:
                self.transport.send_snapshot(m)
            elif m.to in slots:
                if m.to not in self.transport.drop_to:
                    slots[m.to][1].append(m)
            else:
                plain.append(m)
        self.transport.send(plain)

    def _on_soft_state(self, leader: str, role: Role) -> None:
        was_leader = self._role is Role.LEADER
        if leader != self._leader:
            self.leader_changes += 1
            log.info("raft node %s: leader is now %s (term %d, role %s)", self.id, leader or "unknown",
                     self.node.term, role.value)
        self._role, self._leader = role, leader
        # Every log write is inline on a follower; a leader's only up to a few entries.
        self.storage.dlog.inline_max_entries = LEADER_INLINE_ENTRIES if role is Role.LEADER else None
        if was_leader and role is not Role.LEADER:
            self._fail_waiters(self.not_leader)

    async def _install(self, snap: Snapshot) -> None:
        meta, path = snap.meta, Path(snap.data)
        loaded = await asyncio.get_running_loop().run_in_executor(
            None, files.read_snapshot, self.storage.snapshots, path, meta.index, meta.term)
        await self.storage.install_snapshot(snap)
        self.receiver.discard_older(meta.index)
        self.fsm = loaded.fsm
        self._learn_addresses(loaded.addresses)
        self.snapshots_installed += 1
        settled = heap.settle()  # the new index is long-lived (metadata.heap)
        log.info("raft node %s: installed snapshot %d (term %d) from the leader; heap settled in %.3f s", self.id,
                 meta.index, meta.term, settled)

    def _apply(self, rd: Ready) -> None:
        fsm = self.fsm
        for e in rd.committed_entries:
            waiter = self._waiters.pop(e.index, None)
            outcome: Outcome | None = None
            if e.kind is EntryKind.NORMAL:
                cmd = waiter[2] if waiter is not None and waiter[0] == e.term and waiter[2] is not None else None
                if cmd is None:  # a follower's entry, or one replayed: checked when proposed
                    try:
                        cmd = decode_logged_command(e.data)
                    except ObjstoreError as exc:  # identical bytes on every replica: skipped alike
                        log.error("entry %d holds an undecodable command: %s", e.index, exc)
                        cmd = Noop()
                outcome = fsm.apply(e.index, cmd)
            else:
                fsm.apply(e.index, Noop())
                if e.kind is EntryKind.CONF:
                    self._applied_conf(e.index, e.data)
            if waiter is not None and not waiter[1].done():
                if waiter[0] == e.term:
                    waiter[1].set_result(outcome)
                else:
                    waiter[1].set_exception(self.not_leader())

    def _applied_conf(self, index: int, data: bytes) -> None:
        try:
            cc = ConfChange.decode(data)
        except ValueError:
            return
        log.info("raft node %s: membership change at %d: %s %s", self.id, index, cc.type.value, cc.node_id)
        if cc.node_id == self.id and cc.type is ConfChangeType.REMOVE:
            log.warning("raft node %s was removed from the group at index %d; it serves no more requests",
                        self.id, index)

    def _after_advance(self) -> None:
        if self._replay_to is not None and self.fsm.applied_index >= self._replay_to[0]:
            log.info("raft node %s: applied up to %d, the commit index it started with, %.2f s after its storage "
                     "was opened", self.id, self._replay_to[0], time.perf_counter() - self._replay_to[1])
            self._replay_to = None
        if not self._was_member and self.id in self.node.conf_state.members():
            self._was_member = True
        if self.recovering_until and self.node.lead and self.node.log.committed >= self.recovering_until:
            log.warning("raft node %s caught up past index %d: it votes again", self.id, self.recovering_until)
            self.recovering_until = 0
            (self.storage.root / "recovering").unlink(missing_ok=True)
        self._maybe_snapshot()

    # --- internals: snapshots ---------------------------------------------------------------

    def _maybe_snapshot(self) -> None:
        applied = self.fsm.applied_index
        last = max(self.storage.snapshot_meta.index, self._snap_attempt)
        if self._snap_task is not None or self._closed or applied - last < self.settings.snapshot_every:
            return
        if applied - last < snapshot_interval(self.settings.snapshot_every, self.fsm.object_count()):
            return
        self._snap_attempt = applied
        meta = SnapshotMeta(applied, self.storage.term(applied), self.node.conf_state_at(applied))
        chunks = files.snapshot_chunks(meta, dict(self.addresses), freeze(self.fsm), SNAPSHOT_PAUSE_S)
        self._snap_task = asyncio.create_task(self._write_snapshot(meta, chunks), name=f"raft-snapshot {self.id}")

    async def _write_snapshot(self, meta: SnapshotMeta, chunks: Iterator[bytes]) -> None:
        try:
            started = time.perf_counter()
            fm = await self.storage.snapshots.save(meta.index, meta.term, chunks)
            written = time.perf_counter() - started
            if self.storage.record_snapshot(meta, fm.path):
                await self.storage.compact()
            await self.storage.flush_hard_state()
            # What the index grew since the last snapshot is long-lived too (metadata.heap);
            # the frozen copy went with the exhausted chunks, so it is not kept.
            settled = heap.settle()
            log.info("raft node %s: snapshot at %d written in %.2f s; log now starts at %d; heap settled in %.3f s",
                     self.id, meta.index, written, self.storage.first_index(), settled)
        except Exception:  # noqa: BLE001 - the log stays intact; the next interval retries
            log.exception("raft node %s: snapshot at %d failed", self.id, meta.index)
        finally:
            self._snap_task = None
        if self._failed is None:
            self._maybe_snapshot()  # entries applied meanwhile may already make the next one due


async def open_one_voter(node_id: str, data_dir: Path | str, address: str, secret: str = "",
                         settings: RaftSettings = RaftSettings(), timeout: float = 10.0) -> RaftReplicator:
    """A single metadata node: a group whose only voter is ``node_id`` (bootstrapped, or
    migrated from the pre-Raft single-node layout, on first start). Returns once it leads
    and has applied its whole log, the new term's first entry included (or after
    ``timeout``). Its state is the only copy: damage raises StorageError or CorruptLogError
    (:mod:`metadata.storage.recovery`) rather than being cut away or waited out."""
    rep = await RaftReplicator.open(node_id, data_dir, secret, {node_id: address}, False, address, settings)
    if rep.node.conf_state.voters == {node_id}:
        await rep.wait_until(lambda: rep.is_leader() and rep.fsm.applied_index >= rep.node.log.last_index(), timeout)
    return rep


def with_snapshot_data(m: Message, path: Path) -> Message:
    """``m`` (a received SNAP) with its snapshot data pointing at the assembled file."""
    assert m.snapshot is not None
    return dataclasses.replace(m, snapshot=Snapshot(m.snapshot.meta, path))

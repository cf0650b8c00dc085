"""Raft traffic between metadata nodes over HTTP, authenticated by the cluster secret.

Sending (:class:`RaftTransport`): each peer has a queue and two sender tasks; every message
queued while a request was in flight goes out in the next ``POST /raft/messages``
(in the binary form of :mod:`metadata.replication.wire`, or the JSON one, ``{"v": 1,
"from": id, "address": "host:port", "messages": [Message.encode()...], "reply": true}``,
for a batch that does not fit it; the address lets a node that joined empty answer), so
the number of requests follows the round trips, not the messages. New messages wake one
idle sender of their peer, once per call to :meth:`RaftTransport.send`. With ``"reply"`` the receiver answers
with its own messages for the sender in the response body (a batch of the same form),
gathered until the Ready that follows the step has been handled: an acknowledgement once
the entries are durable, a heartbeat or vote answer. A replication or heartbeat round is
thus one request, not one each way; the receiver's transport carries only what it says
on its own (votes it asks for, reads it forwards, anything made after the reply closed).
Since a request is held while the receiver makes entries durable, a second sender lets
heartbeats and further entries go out meanwhile. A message that cannot be
delivered is dropped (Raft retries) and the driver is told (``on_unreachable``). A SNAP
message streams its snapshot file in chunks, one ``POST /raft/snapshot`` per chunk
(query: the message, the chunk's offset, the file size, whether it is the last chunk;
body: the raw bytes), then reports the outcome (``on_snapshot``).

Receiving (:class:`SnapshotReceiver`): chunks of one transfer are appended to a file in
``incoming/`` strictly in order (a chunk at any other offset is refused with 409 and the
sender starts over); the last chunk makes the file durable and verifies it (the snapshot
file format carries its own checksum) before the message is stepped.

Fault injection (tests only, enabled by ``--enable-fault-injection``): ``drop_to`` and
``drop_from`` hold peer ids whose traffic is dropped, to isolate a node in both directions.
All requests are signed (:mod:`objstore.internal_auth`); the receiving routes live in
:mod:`metadata.replication.http`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import quote

from metadata import latency_trace
from metadata.storage.snapshot_store import SnapshotFile, SnapshotStore
from metadata.raft.messages import Message, MessageType
from metadata.replication import wire
from objstore import internal_auth
from objstore.durable_io import FILE_MODE
from objstore.formats import check_version
from objstore.internal_http import Answer, HttpPool
from objstore.errors import InvalidArgument, ObjstoreError

log = logging.getLogger(__name__)

WIRE_VERSION = 1
MAX_QUEUE = 4096
MAX_BATCH_BYTES = 8 << 20
# Requests in flight per peer: a peer holds a request until its answers are ready (entries
# durable), so a second one lets heartbeats and new entries go out meanwhile.
SENDERS_PER_PEER = 2
CHUNK_BYTES = 1 << 20


class TransferConflict(ObjstoreError):
    code, status, default_message = "SnapshotTransferConflict", 409, "Snapshot chunk out of order; start over."


def _quote(v: str) -> str:
    return quote(v, safe="")


def encode_batch(frm: str, address: str, msgs: "Iterable[Message]", reply: bool = False) -> bytes:
    """A batch's body; ``reply`` asks the receiver to answer with its messages for us in
    the response (see the module docstring)."""
    body: dict[str, Any] = {"v": WIRE_VERSION, "from": frm, "address": address, "messages": [m.encode() for m in msgs]}
    if reply:
        body["reply"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def wants_reply(body: Any) -> bool:
    """Whether a (decoded) batch asks for the receiver's messages in the response."""
    return isinstance(body, dict) and body.get("reply") is True


def decode_batch(body: Any, me: str) -> tuple[str, str, list[Message]]:
    """The sender, its address ("" if not given) and the messages of a batch addressed to
    ``me``; raises InvalidArgument."""
    if isinstance(body, dict):
        check_version("a raft message batch", body.get("v"), WIRE_VERSION, error=InvalidArgument)
    if not isinstance(body, dict) or body.get("v") != WIRE_VERSION or not isinstance(body.get("messages"), list):
        raise InvalidArgument("expected {\"v\": 1, \"from\": id, \"messages\": [...]}")
    frm, address = body.get("from"), body.get("address", "")
    if not isinstance(frm, str) or not frm:
        raise InvalidArgument("a raft batch needs its sender id")
    if not isinstance(address, str) or (address and ":" not in address):
        raise InvalidArgument("a raft batch's address must be host:port")
    out = []
    for d in body["messages"]:
        try:
            m = Message.decode(d) if isinstance(d, dict) else None
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        if m is None:
            raise InvalidArgument("a raft message must be an object")
        if m.to != me or m.frm != frm:
            raise InvalidArgument(f"message {m.frm}->{m.to} in a batch {frm}->{me}")
        if m.type is MessageType.SNAP:
            raise InvalidArgument("snapshots travel on /raft/snapshot")
        out.append(m)
    return frm, address, out


class _Peer:
    __slots__ = ("id", "queue", "idle", "tasks", "failing")

    def __init__(self, pid: str) -> None:
        self.id = pid
        self.queue: deque[Message] = deque()
        # Senders waiting for messages, each on its own future: new messages wake one of
        # them, not all (a woken sender that finds the queue empty costs a task step).
        self.idle: list[asyncio.Future] = []
        self.tasks: list[asyncio.Task] = []
        self.failing = False

    def wake_one(self) -> None:
        """Wake one idle sender, if any (none is idle: a busy one takes the queue next)."""
        idle = self.idle
        while idle:
            fut = idle.pop()
            if not fut.done():
                fut.set_result(None)
                return


class RaftTransport:
    """Outgoing Raft traffic of node ``node_id`` (see the module docstring)."""

    def __init__(self, node_id: str, address: str, secret: str, address_of: Callable[[str], "str | None"],
                 on_unreachable: Callable[[str], None], on_snapshot: Callable[[str, bool], None],
                 timeout: float = 3.0, chunk_bytes: int = CHUNK_BYTES, tls: ssl.SSLContext | None = None,
                 on_reply: "Callable[[str, list[Message]], None] | None" = None) -> None:
        self.id = node_id
        self.address = address  # ours, sent along so that a node that just joined can answer
        self.secret = secret
        self.address_of = address_of
        self.on_unreachable = on_unreachable
        self.on_snapshot = on_snapshot
        self.on_reply = on_reply  # messages a peer answered with in the response (None: do not ask)
        self.timeout = timeout
        self.chunk_bytes = chunk_bytes
        self.tls = tls  # a client context: peers are called over HTTPS and verified (None: plain HTTP)
        self.drop_to: set[str] = set()
        self.drop_from: set[str] = set()
        self.snapshots_sent = 0
        self._peers: dict[str, _Peer] = {}
        self._snap_tasks: dict[str, asyncio.Task] = {}
        self._notices: set[asyncio.Task] = set()
        # Whole-body HTTP/1.1 on pooled keep-alive connections (TCP_NODELAY): a batch is a
        # short request and a short answer, for which aiohttp's client cost the leader more
        # CPU than the rest of its side of a commit.
        self._pool = HttpPool(tls, max_idle=2 * SENDERS_PER_PEER)
        self._closed = False

    # --- messages ---------------------------------------------------------------------------

    def send(self, msgs: "Iterable[Message]") -> None:
        """Queue messages for their destinations (never blocks; drops when a queue is full).
        Each peer that got messages wakes one idle sender, once per call."""
        if self._closed:
            return
        touched: list[_Peer] = []
        for m in msgs:
            if m.to in self.drop_to:
                continue
            peer = self._peers.get(m.to)
            if peer is None:
                peer = self._peers[m.to] = _Peer(m.to)
                peer.tasks = [asyncio.create_task(self._sender(peer), name=f"raft-send {self.id}->{m.to} #{i}")
                              for i in range(SENDERS_PER_PEER)]
            if len(peer.queue) >= MAX_QUEUE:
                peer.queue.popleft()
            peer.queue.append(m)
            if peer not in touched:
                touched.append(peer)
        for peer in touched:
            peer.wake_one()

    async def _sender(self, peer: _Peer) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            if not peer.queue:
                fut = loop.create_future()
                peer.idle.append(fut)
                await fut
                continue
            while peer.queue and not self._closed:
                batch, size = [], 0
                while peer.queue and size < MAX_BATCH_BYTES:
                    m = peer.queue.popleft()
                    batch.append(m)
                    size += 64 + sum(len(e.data) for e in m.entries)
                if peer.id in self.drop_to:
                    continue
                ok = await self._post_batch(peer, batch)
                if not ok:
                    self.on_unreachable(peer.id)

    async def _post_batch(self, peer: _Peer, batch: list[Message]) -> bool:
        addr = self.address_of(peer.id)
        if not addr:
            return False
        try:
            body = wire.encode(self.id, self.address, peer.id, batch, reply=self.on_reply is not None)
            content_type = wire.CONTENT_TYPE
        except ValueError:  # not all from us to the peer: the general JSON form
            body = encode_batch(self.id, self.address, batch, reply=self.on_reply is not None)
            content_type = "application/json"
        raw = b""
        if latency_trace.enabled:
            latency_trace.event("S:" + peer.id, max((m.entries[-1].index for m in batch if m.entries), default=0))
        try:
            answer = await self._post(addr, "/raft/messages", body, content_type, self.timeout)
            raw = answer.body
            latency_trace.event("A:" + peer.id, len(raw))
            ok = answer.status < 300
            if not ok and answer.status != 503:
                log.warning("raft messages to %s refused: HTTP %d", peer.id, answer.status)
        except (asyncio.TimeoutError, OSError) as exc:
            ok = False
            if not peer.failing:
                log.info("raft peer %s (%s) unreachable: %s", peer.id, addr, type(exc).__name__)
        if ok and peer.failing:
            log.info("raft peer %s reachable again", peer.id)
        peer.failing = not ok
        if ok and self.on_reply is not None and len(raw) > 2 and peer.id not in self.drop_from:
            self._take_reply(peer.id, raw)
        return ok

    async def _post(self, addr: str, path_qs: str, body: bytes, content_type: str, timeout: float) -> Answer:
        """One signed ``POST`` to the peer at ``addr``; raises OSError or TimeoutError."""
        headers = internal_auth.headers(self.secret, "POST", path_qs, body=body, target=addr)
        headers["Content-Type"] = content_type
        return await self._pool.request("POST", addr, path_qs, headers, body, timeout=timeout)

    def _take_reply(self, frm: str, raw: bytes) -> None:
        """Hand the messages of a response body (a batch from ``frm`` to us) to ``on_reply``;
        a malformed one is logged and dropped (Raft retries)."""
        try:
            if raw[:len(wire.MAGIC)] == wire.MAGIC:
                sender, _, msgs, _ = wire.decode(raw, self.id)
            else:
                sender, _, msgs = decode_batch(json.loads(raw), self.id)
        except (ValueError, RecursionError, InvalidArgument) as exc:  # RecursionError: nested too deep
            log.warning("bad raft reply from %s: %s", frm, exc)
            return
        if sender != frm:
            log.warning("raft reply from %s names sender %s", frm, sender)
            return
        if msgs and self.on_reply is not None:
            self.on_reply(frm, msgs)

    def send_lost_notice(self, to: str, last_index: int) -> None:
        """Tell leader ``to`` that our log ends at ``last_index`` although it believes
        otherwise (``POST /raft/lost``); fire and forget."""
        if self._closed or to in self.drop_to:
            return
        task = asyncio.create_task(self._post_lost(to, last_index), name=f"raft-lost {self.id}->{to}")
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _post_lost(self, to: str, last_index: int) -> None:
        addr = self.address_of(to)
        if not addr:
            return
        body = json.dumps({"v": WIRE_VERSION, "from": self.id, "last_index": last_index}).encode()
        try:
            await self._post(addr, "/raft/lost", body, "application/json", self.timeout)
        except (asyncio.TimeoutError, OSError) as exc:
            log.info("lost-entries notice to %s failed: %s", to, exc)

    # --- snapshots --------------------------------------------------------------------------

    def send_snapshot(self, m: Message) -> None:
        """Stream the snapshot file of SNAP message ``m`` (its ``snapshot.data`` is a path)."""
        old = self._snap_tasks.get(m.to)
        if self._closed or (old is not None and not old.done()):
            if not self._closed:
                self.on_snapshot(m.to, False)
            return
        self._snap_tasks[m.to] = asyncio.create_task(self._stream(m), name=f"raft-snap {self.id}->{m.to}")

    async def _stream(self, m: Message) -> None:
        ok = False
        try:
            ok = await self._stream_file(m, Path(m.snapshot.data))  # type: ignore[union-attr, arg-type]
        except (asyncio.TimeoutError, OSError, ObjstoreError) as exc:
            log.warning("snapshot %d to %s failed: %s", m.snapshot.meta.index, m.to, exc)  # type: ignore[union-attr]
        finally:
            if not self._closed:
                self.on_snapshot(m.to, ok)
        if ok:
            self.snapshots_sent += 1

    async def _stream_file(self, m: Message, path: Path) -> bool:
        loop = asyncio.get_running_loop()
        with open(path, "rb") as f:
            total = os.fstat(f.fileno()).st_size
            msg = json.dumps(m.encode(), separators=(",", ":"))
            offset = 0
            while True:
                if m.to in self.drop_to or self._closed:
                    return False
                chunk = await loop.run_in_executor(None, f.read, self.chunk_bytes)
                done = offset + len(chunk) >= total
                path_qs = (f"/raft/snapshot?msg={_quote(msg)}&offset={offset}&total={total}"
                           f"&done={1 if done else 0}")
                addr = self.address_of(m.to)
                if not addr:
                    return False
                answer = await self._post(addr, path_qs, chunk, "application/octet-stream", max(self.timeout, 30))
                if answer.status >= 300:
                    log.warning("snapshot chunk at %d to %s refused: HTTP %d", offset, m.to, answer.status)
                    return False
                offset += len(chunk)
                if done:
                    return True

    async def close(self) -> None:
        self._closed = True
        tasks = [t for p in self._peers.values() for t in p.tasks] + list(self._snap_tasks.values()) + list(self._notices)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._pool.close()


def _create_private(path: Path) -> Any:
    """A new file at ``path`` (any older one removed), mode ``FILE_MODE``: snapshots carry
    S3 secrets."""
    path.unlink(missing_ok=True)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "wb")


class SnapshotReceiver:
    """Assembles snapshot files sent in chunks, in ``directory`` (``incoming/``)."""

    def __init__(self, directory: Path, store: SnapshotStore) -> None:
        self.dir = directory
        self.store = store
        self._open: dict[str, tuple[tuple[int, int, int], Any, int]] = {}  # sender -> (key, file, size)
        self.received = 0

    def _path(self, frm: str, index: int, term: int) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in frm)
        return self.dir / f"{safe}-{index:020d}-{term:020d}.part"

    async def chunk(self, m: Message, offset: int, total: int, done: bool, data: bytes) -> Path | None:
        """Write one chunk; the verified file once the last chunk arrived, else None.
        Raises TransferConflict (out of order) or InvalidArgument (bad or damaged)."""
        if m.type is not MessageType.SNAP or m.snapshot is None:
            raise InvalidArgument("expected a SNAP message")
        meta = m.snapshot.meta
        key = (meta.index, meta.term, total)
        path = self._path(m.frm, meta.index, meta.term)
        loop = asyncio.get_running_loop()
        cur = self._open.get(m.frm)
        if offset == 0:
            if cur is not None:
                cur[1].close()
            f = await loop.run_in_executor(None, _create_private, path)
            cur = self._open[m.frm] = (key, f, 0)
        if cur is None or cur[0] != key or cur[2] != offset:
            raise TransferConflict(f"expected offset {cur[2] if cur else 0}, got {offset}")
        if offset + len(data) > total or (done and offset + len(data) != total):
            self._abort(m.frm)
            raise InvalidArgument("snapshot chunk does not fit the announced size")
        f = cur[1]
        await loop.run_in_executor(None, f.write, data)
        self._open[m.frm] = (key, f, offset + len(data))
        if not done:
            return None
        del self._open[m.frm]

        def finish() -> bool:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            return self.store.verify(SnapshotFile(meta.index, meta.term, path))

        if not await loop.run_in_executor(None, finish):
            path.unlink(missing_ok=True)
            raise InvalidArgument(f"snapshot {meta.index} from {m.frm} fails its checksum")
        self.received += 1
        return path

    def discard_older(self, index: int) -> None:
        """Delete finished or abandoned transfers of snapshots up to ``index`` (one at that
        index or newer was installed); transfers still being written are kept."""
        busy = {self._path(frm, k[0], k[1]) for frm, (k, _, _) in self._open.items()}
        for p in self.dir.glob("*.part"):
            parts = p.stem.rsplit("-", 2)
            if p not in busy and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) <= index:
                p.unlink(missing_ok=True)

    def _abort(self, frm: str) -> None:
        cur = self._open.pop(frm, None)
        if cur is not None:
            cur[1].close()

    def close(self) -> None:
        for frm in list(self._open):
            self._abort(frm)

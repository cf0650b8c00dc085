"""A Raft node as a driver would run it, in memory: the core, its "disk" and its state machine.

The disk is a :class:`~metadata.raft.storage.MemoryStorage` that survives a crash; the
state machine is volatile and rebuilt from the disk's snapshot on restart. The state
machine is a hash chain over the applied entries (crc32), so two nodes that applied the
same entries in the same order have the same ``fsm_hash`` at the same index, and a
snapshot is simply ``(index, hash)``.

``process_ready`` follows the Ready ordering rules of :mod:`metadata.raft.ready`; a
``crash_at`` point stops it halfway, as a crash would, leaving only what was persisted.
"""
from __future__ import annotations

import random
import zlib
from typing import Callable, Iterable

from metadata.raft.config import RaftConfig
from metadata.raft.core import RaftNode
from metadata.raft.messages import Message
from metadata.raft.ready import Ready
from metadata.raft.records import Entry, EntryKind
from metadata.raft.storage import MemoryStorage

CRASH_BEFORE_PERSIST = "before_persist"  # after the early messages went out
CRASH_MID_PERSIST = "mid_persist"  # snapshot and entries written, hard state not
CRASH_BEFORE_SEND = "before_send"  # everything persisted, nothing sent or applied


def chain(h: int, e: Entry) -> int:
    return zlib.crc32(e.data, zlib.crc32(bytes((e.kind,)), h))


class Host:
    def __init__(self, config: RaftConfig, disk: MemoryStorage, rng: random.Random,
                 node_cls: type[RaftNode] = RaftNode, keep_data: bool = False) -> None:
        self.id = config.id
        self.disk = disk
        self.node = node_cls(config, disk, rng)
        snap = disk.snapshot()
        self.fsm_index, self.fsm_hash = snap.data[:2] if snap.data else (snap.meta.index, 0)
        self.keep_data = keep_data
        # NORMAL entries applied since start (with keep_data): [(index, data)]
        self.applied: list[tuple[int, bytes]] = list(snap.data[2]) if keep_data and snap.data else []
        self.read_states: list = []
        self.on_ready: Callable[["Host", Ready], None] | None = None
        self.on_apply: Callable[["Host", Entry], None] | None = None
        self.on_install: Callable[["Host", object], None] | None = None

    def process_ready(self, send: Callable[[Iterable[Message]], None], crash_at: str | None = None) -> bool:
        """Handle one Ready; False if the host crashed at ``crash_at`` (then discard it)."""
        node = self.node
        rd = node.ready()
        if self.on_ready is not None:
            self.on_ready(self, rd)
        send(rd.early_messages)
        if crash_at == CRASH_BEFORE_PERSIST:
            return False
        if rd.snapshot is not None:
            self.disk.apply_snapshot(rd.snapshot)
            self.fsm_index, self.fsm_hash = rd.snapshot.data[:2]
            if self.keep_data:
                self.applied = list(rd.snapshot.data[2])
            if self.on_install is not None:
                self.on_install(self, rd.snapshot)
        if rd.entries:
            self.disk.append(rd.entries)
        if crash_at == CRASH_MID_PERSIST:
            return False
        if rd.hard_state is not None:
            self.disk.set_hard_state(rd.hard_state)
        if crash_at == CRASH_BEFORE_SEND:
            return False
        send(rd.messages)
        h = self.fsm_hash
        for e in rd.committed_entries:
            if e.index != self.fsm_index + 1:
                raise AssertionError(f"{self.id} applies {e.index} after {self.fsm_index}")
            h = chain(h, e)
            self.fsm_index, self.fsm_hash = e.index, h
            if self.keep_data and e.kind is EntryKind.NORMAL:
                self.applied.append((e.index, e.data))
            if self.on_apply is not None:
                self.on_apply(self, e)
        self.read_states.extend(rd.read_states)
        node.advance(rd)
        return True

    def snapshot_data(self) -> tuple:
        return (self.fsm_index, self.fsm_hash, tuple(self.applied)) if self.keep_data else (self.fsm_index, self.fsm_hash)

    def take_snapshot(self, keep: int = 0) -> bool:
        """Snapshot the state machine at its applied index and compact the disk below it,
        keeping ``keep`` entries; False if there is nothing new to snapshot."""
        if self.fsm_index <= self.disk.snapshot().meta.index:
            return False
        idx = self.fsm_index
        self.disk.create_snapshot(idx, self.node.conf_state_at(idx), self.snapshot_data())
        self.disk.compact(max(idx - keep, self.disk.first_index() - 1))
        return True

    def applied_data(self) -> list[bytes]:
        return [d for _, d in self.applied]

"""A sans-IO Raft core for the metadata service (modelled on etcd-io/raft's RawNode).

:class:`RaftNode` is a pure state machine: no IO, no clock, no global randomness (a seeded
``random.Random`` is injected). A driver owns the IO: the network, the durable log, the
timer and the state machine. Features: leader election with randomized timeouts,
pre-vote, check-quorum (with the follower-side leader lease that ignores disruptive
candidates), log replication with batching and pipelining (per-follower probe /
replicate / snapshot flow control), fast backtracking, the Figure-8 commit rule,
snapshots + compaction + InstallSnapshot, single-server membership changes with
learners (effective on append, one at a time), leadership transfer, ReadIndex reads
(and optional lease reads).

Modules: ``core`` (RaftNode), ``election``, ``follower`` and ``replication`` (its
message handling as candidate, follower and leader), ``raftlog`` (storage +
unstable tail), ``storage`` (the Storage interface, MemoryStorage), ``ready`` (Ready,
Status and the ordering rules), ``messages``, ``records``, ``confchange``, ``progress``,
``quorum``, ``readindex``, ``config``, ``errors``.

How a driver uses it
--------------------

Creating a node::

    storage = <durable storage implementing Storage>   # hard state, entries, snapshot
    node = RaftNode(RaftConfig(id="m1", election_ticks=10, heartbeat_ticks=1),
                    storage, random.Random())
    # A brand-new cluster: every initial member's storage starts with the entries and
    # hard state of storage.bootstrap_entries(voters) (the membership as CONF entries
    # 1..n, identical on every member). A node joining an existing cluster starts with an
    # EMPTY storage (it cannot campaign) and is added by the leader with
    # propose_conf_change(ADD_LEARNER), later promoted with ADD_VOTER.

The loop (one task; every call into the node happens on it)::

    every tick interval:           node.tick()
    on a message from the network: node.step(Message.decode(body))   # fill snapshot.data for SNAP
    on a client write:             index, term = node.propose(cmd_bytes)   # NotLeader/ProposalDropped
                                   remember (index, term) -> waiter
    on a linearizable read:        node.read_index(ctx)            # ctx unique, e.g. node id + counter
    then, whenever node.has_ready():
        rd = node.ready()
        send(rd.early_messages)                      # optional fast path, see ready.py rule 1
        if rd.snapshot: install it (storage.apply_snapshot + restore the state machine)
        storage.append(rd.entries)                   # durable (fsync when rd.must_sync)
        if rd.hard_state: storage.set_hard_state(rd.hard_state)   # durable, after the entries
        send(rd.messages)                            # only after the above is durable
        for e in rd.committed_entries:               # in order
            apply e (NOOP: nothing; CONF: nothing, the core already uses it; NORMAL: the command)
            waiter for (e.index, e.term) gets the outcome; a waiter at e.index with another
            term lost its proposal (answer "retry")
        for rs in rd.read_states: serve read rs.ctx once applied_index >= rs.index
        node.advance(rd)

Writes may be persisted in a background task, but then the loop must not call
``ready()`` again before ``advance()`` of the previous Ready (the core enforces this), and
must go on feeding ``tick``/``step`` meanwhile (both are allowed between ``ready`` and
``advance``).

Sending: a message whose destination is unreachable is simply lost (Raft retries); the
driver may call ``node.report_unreachable(to)``. For every SNAP message the driver streams
``msg.snapshot.data`` (obtained from its storage for ``msg.snapshot.meta``) in chunks, and
calls ``node.report_snapshot(to, ok)`` when the transfer finished or failed (otherwise
replication to that follower stalls). The receiver assembles the chunks, then steps the
SNAP message with ``snapshot.data`` set to what it received; the Ready that follows
carries the snapshot to install.

Snapshots of the state machine: after ``advance``, at an applied index ``i``, the driver
may write a snapshot ``(i, term at i, node.conf_state_at(i), fsm data)`` and then compact
the log up to ``i`` (or lower, to keep a tail for slow followers). Storage.snapshot()
must then return it.

Restart: build the node from the same storage; it rejoins as a follower with its durable
term, vote, log and snapshot. The state machine is restored from the snapshot and the
committed entries after it come back in ``committed_entries`` (or pass
``RaftConfig.applied`` if the state machine is durable beyond the snapshot).

Removal: a node whose configuration no longer lists it as a voter stops campaigning once
it knows the change is committed (before that it may still stand, counting votes in the
new configuration, so a pair can always finish removing one of its two voters); a leader
that removes itself keeps leading until the change is committed, then steps down
(handing over with TIMEOUT_NOW when a voter has its whole log). The leader keeps sending
to a removed node until it holds its removal entry. The driver shuts a removed node
down once the removal is committed (``node.conf_state`` no longer lists it).
"""
from metadata.raft.config import RaftConfig
from metadata.raft.confchange import ConfChange, ConfChangeType
from metadata.raft.core import RaftNode
from metadata.raft.errors import ConfChangeRejected, NotLeader, ProposalDropped, RaftError, TransferRejected
from metadata.raft.messages import Message, MessageType
from metadata.raft.ready import ReadState, Ready, Role, SoftState, Status
from metadata.raft.records import ConfState, Entry, EntryKind, HardState, Snapshot, SnapshotMeta
from metadata.raft.storage import MemoryStorage, Storage, bootstrap_entries, pack_entry, unpack_entry

__all__ = [
    "RaftConfig", "ConfChange", "ConfChangeType", "RaftNode", "ConfChangeRejected", "NotLeader",
    "ProposalDropped", "RaftError", "TransferRejected", "Message", "MessageType", "ReadState", "Ready", "Role",
    "SoftState", "Status",
    "ConfState", "Entry", "EntryKind", "HardState", "Snapshot", "SnapshotMeta", "MemoryStorage", "Storage",
    "bootstrap_entries", "pack_entry", "unpack_entry",
]

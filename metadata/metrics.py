"""The metadata node's metric families: its Raft member, and the cluster view on the leader.

Raft (every member): ``objstore_raft_role{role}`` (1 for the current role, 0 for the others),
``objstore_raft_leader_info{leader}`` (1; absent while no leader is known),
``objstore_raft_leader_changes_total``, ``objstore_raft_snapshot_bytes``, ``objstore_raft_snapshot_index``,
``objstore_raft_snapshot_timestamp_seconds`` (when the newest snapshot was written; age =
``time() - it``), histograms ``objstore_raft_proposal_duration_seconds`` (its ``_count`` is
the proposals), ``objstore_raft_read_index_duration_seconds``,
``objstore_raft_log_fsync_duration_seconds`` and ``objstore_raft_log_entries_per_fsync``.
Term and indexes are the ``objstore_metadata_*`` gauges of :mod:`metadata.app`.

Cluster view (the leader only, so a sum over metadata nodes counts once):
``objstore_cluster_nodes{state}`` (every state in NODE_STATES), ``objstore_cluster_ring_epoch``,
``objstore_cluster_buckets``, ``objstore_cluster_objects``, ``objstore_cluster_bytes``, and per
bucket ``objstore_bucket_{objects,versions,delete_markers,bytes,incomplete_uploads}{bucket}``.
The per-bucket figures come from counters the state machine keeps on apply
(:meth:`MetadataFSM.bucket_usage`): a scrape never walks the index. Cardinality: five series
per bucket.
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Iterator

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from metadata.replication.driver import RaftReplicator
from objstore.metrics import COUNT_BUCKETS, LATENCY_BUCKETS, Metrics
from objstore.types import NODE_STATES

ROLES = ("leader", "follower", "candidate", "pre_candidate", "removed", "failed")
BUCKET_FIGURES = (("objects", "objects", "Objects (keys whose current version is an object)"),
                  ("versions", "versions", "Object versions, current and noncurrent"),
                  ("delete_markers", "delete_markers", "Delete markers"),
                  ("bytes", "bytes", "Bytes of every object version (before replication or erasure coding)"),
                  ("incomplete_uploads", "uploads", "Multipart uploads in progress"))


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=list(labels or ()))
    g.add_metric(list((labels or {}).values()), value)
    return g


class MetadataMetrics:
    """Registers the families above on ``metrics.registry`` and hooks the histograms into
    ``rep`` (its proposals, reads and log writes)."""

    def __init__(self, metrics: Metrics, rep: RaftReplicator) -> None:
        self.rep = rep
        r = metrics.registry
        proposal = Histogram("objstore_raft_proposal_duration_seconds", "Proposal to commit and apply, on the leader",
                             buckets=LATENCY_BUCKETS, registry=r)
        read = Histogram("objstore_raft_read_index_duration_seconds", "ReadIndex: leadership confirmed for a read",
                         buckets=LATENCY_BUCKETS, registry=r)
        fsync = Histogram("objstore_raft_log_fsync_duration_seconds", "Write and fsync of one log batch",
                          buckets=LATENCY_BUCKETS, registry=r)
        entries = Histogram("objstore_raft_log_entries_per_fsync", "Log entries made durable per fsync",
                            buckets=COUNT_BUCKETS, registry=r)
        rep.on_proposed = proposal.observe
        rep.on_read = read.observe

        def on_fsync(n: int, seconds: float) -> None:
            entries.observe(n)
            fsync.observe(seconds)

        rep.storage.dlog.on_fsync = on_fsync
        r.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:  # the collector protocol
        rep = self.rep
        st = rep.status()
        role = GaugeMetricFamily("objstore_raft_role", "This member's Raft role (1: current)", labels=["role"])
        for name in ROLES:
            role.add_metric([name], 1.0 if st["role"] == name else 0.0)
        yield role
        if st["leader"]:
            yield _gauge("objstore_raft_leader_info", "The leader this member knows", 1, {"leader": st["leader"]})
        changes = CounterMetricFamily("objstore_raft_leader_changes", "Times this member saw the leader change")
        changes.add_metric([], st["leader_changes"])
        yield changes
        snap = rep.storage.snapshot().data
        try:
            info = os.stat(snap) if snap else None
        except OSError:
            info = None
        yield _gauge("objstore_raft_snapshot_bytes", "Size of the newest snapshot", info.st_size if info else 0)
        yield _gauge("objstore_raft_snapshot_index", "Log index of the newest snapshot (0: none yet)",
                     st["last_snapshot_index"])
        if info is not None:
            yield _gauge("objstore_raft_snapshot_timestamp_seconds", "When the newest snapshot was written",
                         info.st_mtime)
        if st["role"] == "leader":
            yield from self._cluster_view(rep)

    @staticmethod
    def _cluster_view(rep: RaftReplicator) -> Iterator[GaugeMetricFamily]:
        fsm = rep.fsm
        states = Counter(n.state for n in fsm.nodes.values())
        nodes = GaugeMetricFamily("objstore_cluster_nodes", "Storage nodes by state", labels=["state"])
        for state in NODE_STATES:
            nodes.add_metric([state], states.get(state, 0))
        yield nodes
        yield _gauge("objstore_cluster_ring_epoch", "Cluster map epoch", fsm.epoch)
        usage = fsm.bucket_usage()
        yield _gauge("objstore_cluster_buckets", "Buckets", len(usage))
        yield _gauge("objstore_cluster_objects", "Objects in every bucket", sum(u["objects"] for u in usage.values()))
        yield _gauge("objstore_cluster_bytes", "Bytes of every object version in every bucket",
                     sum(u["bytes"] for u in usage.values()))
        for name, field, doc in BUCKET_FIGURES:
            g = GaugeMetricFamily(f"objstore_bucket_{name}", doc, labels=["bucket"])
            for bucket in sorted(usage):
                g.add_metric([bucket], usage[bucket][field])
            yield g

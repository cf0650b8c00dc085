"""The Grafana dashboard ``ops/grafana/objstore.json``, built from the panel list below.

Run ``python -m ops.grafana.dashboard`` to rewrite the JSON after changing a panel (a test
checks the committed file equals :func:`build`). The JSON is what a user imports into
Grafana (or provisions with ``ops/grafana/provisioning``); its data source is the
``datasource`` variable (any Prometheus scraping the cluster with ``ops/prometheus``'s
configuration, whose target labels are ``service`` and ``node_id``).

Rows: overview (S3 requests/s, errors, p50/p99 by operation, throughput), cluster (nodes by
state, objects and bytes, per-bucket usage), Raft, storage nodes (capacity, fsync latency,
group-commit batch size), data health (below policy, scrub, repair, heartbeats).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

PATH = Path(__file__).resolve().parent / "objstore.json"
UID = "objstore-overview"
TITLE = "objstore"
SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"

# Metric names other parts of objstore export (liveness, scrub, repair): panels reading
# them show data once those parts run.
EXTERNAL_METRICS = (
    "objstore_node_heartbeat_age_seconds",
    "objstore_scrub_bytes_verified_total",
    "objstore_scrub_corrupt_blobs_total",
    "objstore_scrub_last_full_pass_timestamp_seconds",
    "objstore_cluster_objects_below_policy",
    "objstore_cluster_bytes_below_policy",
    "objstore_repair_bytes_total",
)


class Target(NamedTuple):
    expr: str
    legend: str = ""
    instant: bool = False  # a table of current values rather than a time series


class Panel(NamedTuple):
    title: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat", "table"
    width: int = 8
    description: str = ""


def _p(q: float, metric: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{selector}[{RATE}])))"


def _avg(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}_sum[{RATE}])) / sum by ({by}) (rate({metric}_count[{RATE}]))"


GW = '{role="gateway"}'
ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    ("Overview", (
        Panel("S3 requests/s by operation",
              (Target(f'sum by (op) (rate(objstore_requests_total{GW}[{RATE}]))', "{{op}}"),), "reqps"),
        Panel("S3 errors/s by status",
              (Target(f'sum by (status) (rate(objstore_requests_total{{role="gateway", status=~"[45].."}}[{RATE}]))',
                      "{{status}}"),
               Target(f"sum by (code) (rate(objstore_s3_errors_total[{RATE}]))", "{{code}}")), "reqps"),
        Panel("S3 latency p50 / p99 by operation",
              (Target(_p(0.5, "objstore_request_seconds", "op", GW), "p50 {{op}}"),
               Target(_p(0.99, "objstore_request_seconds", "op", GW), "p99 {{op}}")), "s"),
        Panel("S3 throughput",
              (Target(f"sum(rate(objstore_bytes_in_total{GW}[{RATE}]))", "in"),
               Target(f"sum(rate(objstore_bytes_out_total{GW}[{RATE}]))", "out")), "Bps"),
        Panel("S3 requests in flight", (Target("sum(objstore_s3_requests_in_flight)", "in flight"),)),
        Panel("Gateway calls to metadata and storage nodes, p99",
              (Target(_p(0.99, "objstore_gateway_backend_request_duration_seconds", "backend"), "{{backend}}"),),
              "s"),
    )),
    ("Cluster", (
        Panel("Storage nodes by state", (Target("objstore_cluster_nodes", "{{state}}"),)),
        Panel("Objects and bytes stored",
              (Target("objstore_cluster_objects", "objects"), Target("objstore_cluster_bytes", "bytes")),
              description="bytes: every object version, before replication or erasure coding"),
        Panel("Ring epoch and buckets",
              (Target("objstore_cluster_ring_epoch", "ring epoch"), Target("objstore_cluster_buckets", "buckets")),
              kind="stat"),
        Panel("Usage by bucket",
              (Target("objstore_bucket_bytes", "{{bucket}} bytes", True),
               Target("objstore_bucket_objects", "{{bucket}} objects", True),
               Target("objstore_bucket_versions", "{{bucket}} versions", True),
               Target("objstore_bucket_incomplete_uploads", "{{bucket}} incomplete uploads", True)),
              kind="table", width=24),
    )),
    ("Raft (metadata)", (
        Panel("Role (1: leader) and term",
              (Target('objstore_raft_role{role="leader"}', "leader {{node_id}}"),
               Target("objstore_metadata_term", "term {{node_id}}"))),
        Panel("Commit and applied index",
              (Target("objstore_metadata_commit_index", "commit {{node_id}}"),
               Target("objstore_metadata_applied_index", "applied {{node_id}}"))),
        Panel("Proposals/s", (Target(f"sum(rate(objstore_raft_proposal_duration_seconds_count[{RATE}]))",
                                     "proposals"),), "ops"),
        Panel("Proposal and ReadIndex latency p99",
              (Target(_p(0.99, "objstore_raft_proposal_duration_seconds", "node_id"), "proposal {{node_id}}"),
               Target(_p(0.99, "objstore_raft_read_index_duration_seconds", "node_id"), "read index {{node_id}}")),
              "s"),
        Panel("Log fsync p99 and entries per fsync",
              (Target(_p(0.99, "objstore_raft_log_fsync_duration_seconds", "node_id"), "fsync p99 {{node_id}}"),
               Target(_avg("objstore_raft_log_entries_per_fsync", "node_id"), "entries/fsync {{node_id}}"))),
        Panel("Snapshot size and entries since",
              (Target("objstore_raft_snapshot_bytes", "bytes {{node_id}}"),
               Target("objstore_metadata_applied_index - objstore_raft_snapshot_index", "entries since {{node_id}}"))),
        Panel("Leader changes", (Target("sum by (node_id) (increase(objstore_raft_leader_changes_total[1h]))",
                                        "{{node_id}}"),)),
    )),
    ("Storage nodes", (
        Panel("Capacity used", (Target("1 - objstore_storage_free_bytes / objstore_storage_capacity_bytes",
                                       "{{node}}"),), "percentunit"),
        Panel("Bytes used and free",
              (Target("objstore_storage_used_bytes", "used {{node}}"),
               Target("objstore_storage_free_bytes", "free {{node}}")), "bytes"),
        Panel("Group-commit fsync latency p99",
              (Target(_p(0.99, "objstore_storage_fsync_duration_seconds", "node"), "{{node}}"),), "s"),
        Panel("Group-commit batch size (records per fsync)",
              (Target(_avg("objstore_storage_commit_batch_records", "node"), "{{node}}"),)),
        Panel("Read and write bytes/s",
              (Target(f'sum by (node_id) (rate(objstore_bytes_in_total{{role="storage"}}[{RATE}]))', "write {{node_id}}"),
               Target(f'sum by (node_id) (rate(objstore_bytes_out_total{{role="storage"}}[{RATE}]))', "read {{node_id}}")),
              "Bps"),
        Panel("Blobs and checksum failures",
              (Target("objstore_storage_blobs", "blobs {{node}}"),
               Target("increase(objstore_storage_corrupt_reads_total[1h])", "corrupt reads {{node_id}}"))),
    )),
    ("Data health", (
        Panel("Storage nodes up (scraped)", (Target('up{service="storage"}', "{{node_id}}"),)),
        Panel("Heartbeat age", (Target("objstore_node_heartbeat_age_seconds", "{{node}}"),), "s"),
        Panel("Objects and bytes below policy",
              (Target("objstore_cluster_objects_below_policy", "objects"),
               Target("objstore_cluster_bytes_below_policy", "bytes"))),
        Panel("Scrub: bytes verified/s and corrupt blobs found",
              (Target(f"sum by (node) (rate(objstore_scrub_bytes_verified_total[{RATE}]))", "verified {{node}}"),
               Target("increase(objstore_scrub_corrupt_blobs_total[1h])", "corrupt {{node}}"))),
        Panel("Time since the last full scrub pass",
              (Target("time() - objstore_scrub_last_full_pass_timestamp_seconds", "{{node}}"),), "s"),
        Panel("Repair bytes/s", (Target(f"sum by (node) (rate(objstore_repair_bytes_total[{RATE}]))", "{{node}}"),),
              "Bps"),
    )),
)


def _panel(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    targets = []
    for i, t in enumerate(p.targets):
        target = {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": t.expr, "legendFormat": t.legend}
        if t.instant:
            target.update(instant=True, range=False, format="table")
        targets.append(target)
    panel: dict[str, Any] = {
        "id": pid, "type": p.kind, "title": p.title, "datasource": DATASOURCE, "targets": targets,
        "gridPos": {"x": x, "y": y, "w": p.width, "h": 8},
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if p.kind == "timeseries" else {},
    }
    if p.description:
        panel["description"] = p.description
    if p.kind == "table":
        panel["transformations"] = [{"id": "merge", "options": {}}]
    return panel


def build() -> dict[str, Any]:
    """The dashboard model."""
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for title, row in ROWS:
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False, "panels": [],
                       "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}})
        pid, y, x = pid + 1, y + 1, 0
        for p in row:
            if x + p.width > 24:
                x, y = 0, y + 8
            panels.append(_panel(p, pid, x, y))
            pid, x = pid + 1, x + p.width
        y += 8
    return {
        "uid": UID, "title": TITLE, "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True,
        "tags": ["objstore", "s3"], "timezone": "", "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "annotations": {"list": []}, "panels": panels,
    }


def queries(model: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel of ``model``."""
    return [(p["title"], t["expr"]) for p in model["panels"] if p["type"] != "row" for t in p["targets"]]


def external(expr: str) -> bool:
    """Whether ``expr`` reads a metric of :data:`EXTERNAL_METRICS`."""
    return any(re.search(rf"\b{name}\b", expr) for name in EXTERNAL_METRICS)


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    PATH.write_text(render())
    print(f"wrote {PATH}")

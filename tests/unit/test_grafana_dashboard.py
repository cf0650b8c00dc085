"""The Grafana dashboard in ops/grafana: the committed JSON is what ops.grafana.dashboard
builds, and it is a valid dashboard model (uid, title, schemaVersion, rows the issue asks
for, every panel with a data source and PromQL targets); the provisioning files point at it.
(Every query is run against a real Prometheus in tests/integration/test_monitoring.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from ops.grafana import dashboard

GRAFANA = Path(dashboard.__file__).resolve().parent


def model() -> dict:
    return json.loads((GRAFANA / "objstore.json").read_text())


def test_committed_json_is_what_the_builder_makes():
    assert (GRAFANA / "objstore.json").read_text() == dashboard.render(), "run python -m ops.grafana.dashboard"


def test_dashboard_model_fields():
    m = model()
    assert m["uid"] == "objstore-overview" and m["title"] == "objstore"
    assert isinstance(m["schemaVersion"], int) and m["schemaVersion"] >= 36
    assert [v["name"] for v in m["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in m["panels"]]
    assert len(ids) == len(set(ids))
    rows = [p["title"] for p in m["panels"] if p["type"] == "row"]
    assert rows == ["Overview", "Cluster", "Raft (metadata)", "Storage nodes", "Data health"]
    for p in m["panels"]:
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        if p["type"] == "row":
            continue
        assert p["type"] in ("timeseries", "stat", "table"), p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["refId"] and t["datasource"] == p["datasource"], p["title"]


def test_overview_and_storage_panels_the_issue_names():
    titles = " | ".join(p["title"] for p in model()["panels"])
    for words in ("requests/s", "errors", "p50 / p99", "throughput", "fsync", "batch size", "Capacity",
                  "below policy", "Scrub", "Repair", "Proposals/s"):
        assert words in titles, words


def test_provisioning_files():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "objstore.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    dash = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "objstore.yml").read_text())
    assert dash["providers"][0]["type"] == "file" and dash["providers"][0]["options"]["path"]

"""What `objstore up` hands Prometheus: the targets file, the configuration written beside
it, and the message when the binary is missing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from objstore.cluster import prometheus
from objstore.cluster.supervisor import Child


def children() -> list[Child]:
    return [Child("metadata", "m1", "127.0.0.1:7001", [], Path("m1.log")),
            Child("storage", "s1", "127.0.0.1:7101", [], Path("s1.log"))]


def test_targets_file_names_each_process_with_its_labels(tmp_path):
    path = prometheus.write_targets(tmp_path, children(), https=False)
    assert path == tmp_path / "prometheus" / "targets.json"
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:7001"], "labels": {"service": "metadata", "node_id": "m1"}},
        {"targets": ["127.0.0.1:7101"], "labels": {"service": "storage", "node_id": "s1"}},
    ]
    assert path.stat().st_mode & 0o077 == 0
    https = prometheus.targets(children(), https=True)
    assert all(t["labels"]["__scheme__"] == "https" for t in https)


def test_config_takes_the_interval_token_file_and_ca():
    cfg = yaml.safe_load(prometheus.config_text(1, ca_file="/d/ca.pem", token_file="/d/token"))
    assert cfg["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"}
    job = cfg["scrape_configs"][0]
    assert job["file_sd_configs"] == [{"files": ["targets.json"], "refresh_interval": "1s"}]
    assert job["authorization"] == {"credentials_file": "/d/token"}
    assert job["tls_config"] == {"ca_file": "/d/ca.pem"}
    plain = yaml.safe_load(prometheus.config_text(15))
    assert plain["global"]["scrape_interval"] == "15s" and "authorization" not in plain["scrape_configs"][0]


def test_missing_binary_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(prometheus.shutil, "which", lambda name: None)
    with pytest.raises(prometheus.PrometheusMissing, match="apt-get install prometheus"):
        prometheus.prometheus_child(tmp_path, "127.0.0.1", 9090, 15)

"""Configs load from a JSON file, flags override it, and missing or unknown settings are refused."""
from __future__ import annotations

import json

import pytest

from objstore.config import StorageConfig, load
from objstore.errors import InvalidArgument


def test_file_then_flags(tmp_path):
    f = tmp_path / "s1.json"
    f.write_text(json.dumps({"node_id": "s1", "data_dir": "/d", "secret": "x", "port": 7100, "metadata": ["a:1", "b:2"]}))
    cfg = load(StorageConfig, str(f), {"port": 7200, "zone": None})
    assert cfg.node_id == "s1" and cfg.port == 7200 and cfg.zone == "zone-a" and cfg.metadata == ("a:1", "b:2")


def test_missing_and_unknown_settings_are_refused(tmp_path):
    with pytest.raises(InvalidArgument, match="--node-id"):
        load(StorageConfig, None, {"data_dir": "/d", "secret": "x"})
    with pytest.raises(InvalidArgument, match="unknown config keys: colour"):
        load(StorageConfig, None, {"node_id": "s1", "data_dir": "/d", "secret": "x", "colour": "red"})
    with pytest.raises(InvalidArgument):
        load(StorageConfig, None, {"node_id": "s1", "data_dir": "/d", "secret": "x", "port": 70000})

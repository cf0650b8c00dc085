"""`objstore scrub`: its flags on `objstore storage` and `objstore up`, the status table and
the progress bar."""
from __future__ import annotations

import argparse

import pytest

import objstore.node.cli_args
from objstore.cluster.launcher import Cluster, UpOptions
from objstore.errors import InvalidArgument
from ops.cli import build_parser
from ops.cli.scrub import progress_line, render


def _storage(*argv: str):
    p = argparse.ArgumentParser()
    objstore.node.cli_args.add_arguments(p)
    return objstore.node.cli_args.config_from_args(p.parse_args(["--node-id", "s1", "--data-dir", "/d",
                                                                 "--secret", "S", *argv]))


def test_scrub_flags_reach_the_storage_config_and_are_checked():
    cfg = _storage("--scrub-rate", "5.5", "--scrub-interval", "600")
    assert (cfg.scrub_rate, cfg.scrub_interval) == (5.5, 600.0)
    assert (_storage().scrub_rate, _storage().scrub_interval) == (20.0, 86400.0)
    with pytest.raises(InvalidArgument, match="scrub"):
        _storage("--scrub-rate", "0")
    with pytest.raises(InvalidArgument, match="scrub"):
        _storage("--scrub-interval", "-1")


def test_objstore_up_passes_the_scrub_flags_to_every_storage_node(tmp_path):
    args = build_parser().parse_args(["up", "--scrub-rate", "50", "--data-dir", str(tmp_path)])
    storage_args = objstore.node.cli_args.scrub_argv(args)
    assert storage_args == ("--scrub-rate", "50.0")
    cluster = Cluster(UpOptions(data_dir=str(tmp_path), storage_nodes=3, storage_args=storage_args))
    cluster.plan()
    storage = [c for c in cluster.children if c.role == "storage"]
    assert len(storage) == 3 and all(c.argv[-2:] == ["--scrub-rate", "50.0"] for c in storage)


def test_scrub_subcommands_parse():
    p = build_parser()
    a = p.parse_args(["scrub", "start", "s2", "--wait", "--json"])
    assert (a.scrub_action, a.node, a.wait, a.json) == ("start", "s2", True, True)
    assert p.parse_args(["scrub", "status"]).node is None
    with pytest.raises(SystemExit):
        p.parse_args(["scrub", "start"])  # a node is required


def _status(node: str, **kw) -> dict:
    return {"node_id": node, "state": "waiting", "pass": None, "last_full_pass": None, "bytes_verified": 0,
            "corrupt_found": 0, "repaired": 0, "quarantined": 0, "rate_bytes_per_s": 20e6, **kw}


def test_status_table_shows_each_node():
    running = {"progress": 0.25, "bytes_total": 4 * 1024**3, "bytes_done": 1024**3}
    text = render([_status("s1", last_full_pass=1000.0, corrupt_found=2, repaired=1, quarantined=1),
                   _status("s2", state="scrubbing", **{"pass": running}),
                   {"node_id": "s3", "error": "refused"}], now=1000.0 + 3 * 3600)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["NODE", "STATE", "PASS"]
    assert lines[1].split()[:7] == ["s1", "waiting", "-", "3.0h", "ago", "0", "B"] and " 2 " in lines[1]
    assert "25.0% of 4.0 GiB" in lines[2] and "never" in lines[2]
    assert lines[3].split()[:2] == ["s3", "unreachable"]


def test_progress_line_has_rate_and_eta():
    p = {"progress": 0.5, "bytes_done": 100 * 10**6, "bytes_total": 200 * 10**6, "elapsed": 5.0,
         "blobs_done": 10, "blobs_total": 20}
    line = progress_line(p, width=10)
    assert line.startswith("[#####.....]  50.0%") and "10/20 blobs" in line
    assert "19.1 MiB/s" in line and "ETA 0m05s" in line
    # Early in a pass the burst makes the average too fast: the node's rate bounds it.
    assert "ETA 0m10s" in progress_line(p, limit=10e6) and "9.5 MiB/s" in progress_line(p, limit=10e6)
    assert "ETA -" in progress_line({**p, "bytes_done": 0, "progress": 0.0, "elapsed": 0.0})


def test_objstore_status_shows_each_nodes_scrubber():
    from ops.cli.status import render as status_render

    node = {"node_id": "s1", "address": "h:1", "zone": "zone-a", "state": "up", "weight": 1.0, "reachable": True,
            "blob_count": 3, "used_bytes": 10, "capacity_bytes": 100, "ring_share": 1.0}
    status = {"metadata": {}, "ring_epoch": 1, "bucket_policies": {},
              "nodes": [{**node, "scrub": _status("s1", corrupt_found=4)},
                        {**node, "node_id": "s2", "reachable": False, "scrub": None}]}
    text = status_render(status)
    scrub_part = text.split("\nscrub\n", 1)[1].splitlines()
    assert scrub_part[0].startswith("NODE") and len(scrub_part) == 2
    assert scrub_part[1].split()[:2] == ["s1", "waiting"] and " 4 " in scrub_part[1]


def test_objstore_status_names_the_rings_kept_until_handed_over():
    from ops.cli.status import render as status_render

    status = {"metadata": {}, "ring_epoch": 9, "placement_epoch": 8, "kept_rings": [5, 2], "bucket_policies": {},
              "nodes": []}
    assert "older rings kept until handed over: epoch 5, epoch 2" in status_render(status)
    assert "placement since epoch 8" in status_render(status)
    assert "kept" not in status_render({**status, "kept_rings": []})

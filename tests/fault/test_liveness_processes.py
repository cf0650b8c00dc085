"""Liveness with real processes (``objstore up --node-timeout 1 --down-after 3``): a
SIGKILLed storage node is marked down, then out; ``objstore status`` shows it; the
gateway learns the change by long poll; new objects get full width without it; started
again, it is up."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from metadata.api.client import MetadataClient
from objstore.cluster.supervisor import Child
from ops.cli.status import collect
from tests.cluster_harness import ROOT, TEST_RESERVE_BYTES, LocalCluster
from tests.integration.conftest import make_s3

pytestmark = pytest.mark.integration

NODE_TIMEOUT, DOWN_AFTER = 1.0, 3.0
HEARTBEAT = 0.25  # what `objstore up` gives storage nodes for that timeout


def _status_command(cluster: LocalCluster, *flags: str) -> str:
    """``objstore status``'s output while a node is out: exit code 1 (degraded)."""
    out = subprocess.run([sys.executable, "-m", "ops.cli", "status", "--data-dir", str(cluster.data_dir), *flags],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1, out.stderr
    return out.stdout


def _gateway_epoch(cluster: LocalCluster) -> int:
    with urllib.request.urlopen(f"{cluster.endpoint}/health", timeout=2) as resp:
        return json.loads(resp.read())["ring_epoch"]


async def _wait_state(meta: MetadataClient, node_id: str, state: str, timeout: float) -> tuple[float, int]:
    """Poll the map until ``node_id`` is in ``state``; (when it was seen, the map's epoch)."""
    end = time.monotonic() + timeout
    while True:
        cmap = await meta.get_cluster_map()
        node = cmap.node(node_id)
        if node is not None and node.state == state:
            return time.monotonic(), cmap.epoch
        assert time.monotonic() < end, f"{node_id} is {node.state if node else None}, not {state}, after {timeout}s"
        await asyncio.sleep(0.05)


def _restart_storage(cluster: LocalCluster, node_id: str, log: Path) -> Child:
    """Start the storage node again, as the launcher did (``python -m ops.cli storage``,
    which imports only the storage node's modules): same id, data dir, address, zone."""
    proc = next(p for p in cluster.processes("storage") if p["id"] == node_id)
    host, port = proc["address"].rsplit(":", 1)
    metas = ",".join(p["address"] for p in cluster.processes("metadata"))
    secret = json.loads((cluster.data_dir / "credentials.json").read_text())["cluster_secret"]
    argv = [sys.executable, "-m", "ops.cli", "storage", "--node-id", node_id,
            "--data-dir", str(cluster.data_dir / "storage" / node_id), "--host", host, "--port", port,
            "--zone", "zone-a", "--metadata", metas, "--heartbeat-interval", "0.25",
            "--reserve-bytes", str(TEST_RESERVE_BYTES)]
    child = Child("storage", node_id, proc["address"], argv, log)
    child.start({**os.environ, "OBJSTORE_CLUSTER_SECRET": secret, "PYTHONPATH": str(ROOT)})
    return child


def test_killed_node_goes_down_then_out_and_up_when_restarted(tmp_path: Path) -> None:
    args = ("--node-timeout", str(NODE_TIMEOUT), "--down-after", str(DOWN_AFTER))
    with LocalCluster(tmp_path / "data", storage_nodes=4, extra_args=args) as cluster:
        s3 = make_s3(cluster)
        s3.create_bucket(Bucket="alive")
        secret = json.loads((cluster.data_dir / "credentials.json").read_text())["cluster_secret"]
        metas = [p["address"] for p in cluster.processes("metadata")]
        restarted: Child | None = None

        async def scenario() -> None:
            nonlocal restarted
            async with MetadataClient(metas, secret) as meta:
                cluster.kill_node("s1")  # SIGKILL, s1 is in zone-a (as is s4)
                killed = time.monotonic()
                seen, down_epoch = await _wait_state(meta, "s1", "down", NODE_TIMEOUT + 2.0)
                assert seen - killed >= NODE_TIMEOUT - HEARTBEAT - 0.05  # the timeout runs from its last heartbeat
                # The gateway's long poll brings it the new epoch without any S3 request.
                end = seen + 1.5
                while _gateway_epoch(cluster) < down_epoch:
                    assert time.monotonic() < end, "the gateway did not learn the new epoch within 1.5 s"
                    await asyncio.sleep(0.05)

                status = await collect(metas, secret)  # `objstore status`'s data; the command
                # itself may take longer to start than the node stays down, so it checks "out" below
                row = next(n for n in status["nodes"] if n["node_id"] == "s1")
                assert row["state"] == "down" and row["heartbeat_age"] >= NODE_TIMEOUT
                assert all(n["free_bytes"] > 0 for n in status["nodes"] if n["node_id"] != "s1")

                for i in range(8):  # s1 takes no new blob; its slots go to handoffs
                    await asyncio.to_thread(s3.put_object, Bucket="alive", Key=f"k{i}", Body=os.urandom(5000 + i))
                    version = await meta.get_object("alive", f"k{i}")
                    assert len(version.placement) == 3 and "s1" not in version.placement, version.placement

                await _wait_state(meta, "s1", "out", DOWN_AFTER + 2.0)
                shown = json.loads(_status_command(cluster, "--json"))
                assert shown["nodes"][0]["state"] == "out"
                assert "storage node s1 is out" in shown["health"]["problems"]
                table = _status_command(cluster).splitlines()
                assert "HEARTBEAT" in next(line for line in table if line.startswith("NODE"))
                assert " out " in next(line for line in table if line.startswith("s1 "))

                restarted = _restart_storage(cluster, "s1", tmp_path / "s1-again.log")
                await _wait_state(meta, "s1", "up", 15.0)

        try:
            asyncio.run(scenario())
        finally:
            if restarted is not None:
                restarted.stop(grace=10)

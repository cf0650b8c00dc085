"""A paused storage node (SIGSTOP) and a full one, in a real cluster (``objstore up``).

Paused: every PUT finishes within the straggler bound plus a margin, records written
while the node was stopped list the two nodes that acknowledged, GETs of objects with a
replica on it finish within the read-stall bound plus a margin with the right bytes, and
after SIGCONT the node serves again and repair gives those records their third copy. Full: a storage node with an 8 MiB
``--capacity-bytes`` refuses blobs beyond its reserve, their copies go to the other nodes
at full redundancy, deleting its objects frees its space (once garbage collection takes
their blobs), and nothing stored is lost.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Iterator

import pytest

from objstore.cli_args import SECRET_ENV
from objstore.errors import ServiceUnavailable
from objstore.node.store import default_reserve
from tests.cluster_harness import ROOT, LocalCluster, free_port
from tests.harness.eventually import eventually
from tests.integration.conftest import make_s3
from tests.integration.internals import ClusterInternals

pytestmark = pytest.mark.integration

KIB, MIB = 1024, 1024 * 1024
STRAGGLER, READ_STALL = 1.0, 1.0
MARGIN = 4.0  # generous for two busy cores; a paused node costs 30 s without the bounds
SUSPECT = 3.0  # the gateway avoids a node that failed for this long (default 5 s)
BOUNDS = ("--straggler-timeout", str(STRAGGLER), "--read-stall-timeout", str(READ_STALL))
# Deleted objects' blobs are garbage collection's: a short grace, so deletes free space in seconds.
SHORT_GC = ("--gc-grace", "4", "--gc-interval", "0.5")


def timed(fn):  # noqa: ANN001, ANN201
    began = time.monotonic()
    result = fn()
    return result, time.monotonic() - began


def test_a_paused_storage_node_delays_puts_and_gets_by_a_bounded_time(tmp_path):
    # The paused node must not be marked down (reads would then ask it last) before a read
    # has found it suspected no more: a node timeout far longer than the test.
    flags = ("--metadata-nodes", "1", *BOUNDS, "--suspect-timeout", str(SUSPECT), "--node-timeout", "120")
    with LocalCluster(tmp_path / "data", storage_nodes=3, extra_args=flags) as cluster:
        s3 = make_s3(cluster)
        internals = ClusterInternals(cluster)
        s3.create_bucket(Bucket="paused")
        bodies: dict[str, bytes] = {}
        s1_first = None  # an object whose reads ask s1 first
        for i in range(60):
            key = f"before/{i}"
            bodies[key] = os.urandom(4 * KIB if i % 2 else MIB)
            s3.put_object(Bucket="paused", Key=key, Body=bodies[key])
            if internals.version("paused", key).placement[0] == "s1":
                s1_first = s1_first or key
            if s1_first and len(bodies) >= 6:
                break
        assert s1_first, "no object reads from s1 first"
        stopped = cluster.pid_of("s1")
        os.kill(stopped, signal.SIGSTOP)
        put_times, get_times = [], []
        try:
            for i in range(30):
                key = f"during/{i}"
                bodies[key] = os.urandom(4 * KIB if i % 2 else MIB)
                _, took = timed(lambda: s3.put_object(Bucket="paused", Key=key, Body=bodies[key]))
                assert took < STRAGGLER + MARGIN, (key, took)
                assert sorted(internals.version("paused", key).placement) == ["s2", "s3"], key
                put_times.append(took)
            assert put_times[0] >= STRAGGLER  # the first PUT sent to s1 too, and abandoned it

            def get(key: str) -> float:
                got, took = timed(lambda: s3.get_object(Bucket="paused", Key=key)["Body"].read())
                assert got == bodies[key] and took < READ_STALL + MARGIN, (key, took)
                get_times.append(took)
                return took

            # Once the gateway no longer suspects s1 (SUSPECT after its last failure) a read
            # asks it first, waits the stall bound, and goes on with the next replica.
            eventually(lambda: get(s1_first) >= READ_STALL, timeout=20, interval=0.2,
                       message="a GET that tried s1 first")
            for key in bodies:
                if key.startswith("before/"):
                    get(key)
        finally:
            os.kill(stopped, signal.SIGCONT)
        print(f"s1 stopped: PUT max {max(put_times):.2f} s, median {sorted(put_times)[15]:.3f} s; "
              f"GET max {max(get_times):.2f} s, median {sorted(get_times)[len(get_times) // 2]:.3f} s")

        def lands_on_all_three() -> bool:  # once the gateway stops suspecting s1 (SUSPECT)
            key = f"after/{len(bodies)}"
            bodies[key] = os.urandom(4 * KIB)
            s3.put_object(Bucket="paused", Key=key, Body=bodies[key])
            return sorted(internals.version("paused", key).placement) == ["s1", "s2", "s3"]

        eventually(lands_on_all_three, timeout=20, interval=0.5, message="a PUT to reach s1 again")
        # Repair gives the objects written while s1 was stopped their third copy (on s1,
        # the only node without one).
        eventually(lambda: internals._run(lambda m, s: m.repair_status())["objects_below_policy"] == 0,
                   timeout=30, interval=0.3, message="the objects written while s1 was stopped to be repaired")
        for key in (k for k in bodies if k.startswith("during/")):
            assert sorted(internals.version("paused", key).placement) == ["s1", "s2", "s3"], key
        for key, body in bodies.items():
            assert s3.get_object(Bucket="paused", Key=key)["Body"].read() == body, key


class ExtraStorageNode:
    """One more storage node process (s4), started by the test with its own flags, as
    ``objstore up`` starts its storage nodes (``python -m ops.cli storage``, which imports
    only the storage node's modules)."""

    def __init__(self, cluster: LocalCluster, internals: ClusterInternals, *flags: str) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        meta = ",".join(internals.meta_addrs)
        log = open(cluster.data_dir.parent / "s4.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "storage", "--node-id", "s4", "--data-dir",
             str(cluster.data_dir.parent / "s4"), "--port", str(self.port), "--zone", "zone-a", "--metadata", meta,
             *flags],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, SECRET_ENV: internals.secret})
        log.close()

    def stats(self, internals: ClusterInternals) -> dict:
        return internals._run(lambda m, s: s.stats(self.address))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def cluster_with_capped_node(tmp_path, capacity: int) -> Iterator[tuple[Any, ClusterInternals, ExtraStorageNode]]:
    """Three storage nodes and s4 with ``--capacity-bytes capacity``, garbage collection's
    grace short on all: (S3 client, internals, s4)."""
    with LocalCluster(tmp_path / "data", storage_nodes=3, extra_args=("--metadata-nodes", "1", *SHORT_GC)) as cluster:
        internals = ClusterInternals(cluster)
        s4 = ExtraStorageNode(cluster, internals, "--capacity-bytes", str(capacity), *SHORT_GC)
        try:
            internals.nodes["s4"] = s4.address
            yield make_s3(cluster), internals, s4
        finally:
            s4.stop()


def test_a_full_node_gets_no_more_copies_and_deletes_free_its_space(tmp_path):
    capacity = 8 * MIB
    reserve = default_reserve(capacity)
    with cluster_with_capped_node(tmp_path, capacity) as (s3, internals, s4):

        def stats() -> dict:
            return s4.stats(internals)

        def answers() -> bool:
            assert s4.proc.poll() is None, "s4 exited"
            try:
                return bool(stats())
            except ServiceUnavailable:
                return False

        eventually(answers, timeout=15, message="s4 to answer")
        s3.create_bucket(Bucket="full")
        bodies: dict[str, bytes] = {}

        def probe_lands_on_s4() -> bool:  # the gateway refreshes its cluster map every 2 s
            key = f"probe/{len(bodies)}"
            bodies[key] = os.urandom(4 * KIB)
            s3.put_object(Bucket="full", Key=key, Body=bodies[key])
            return "s4" in internals.version("full", key).placement

        eventually(probe_lands_on_s4, timeout=20, interval=0.3, message="a PUT placed on s4")
        on_s4 = []
        for i in range(16):
            key, body = f"big/{i}", os.urandom(2 * MIB)  # a blob file each: deleting frees its space
            before = stats()
            s3.put_object(Bucket="full", Key=key, Body=body)
            bodies[key] = body
            placement = internals.version("full", key).placement
            assert len(set(placement)) == 3, (key, placement)  # full redundancy, on distinct nodes
            if before["free_bytes"] - 2 * MIB < before["reserve_bytes"]:
                assert "s4" not in placement, (key, before)
            if "s4" in placement:
                on_s4.append(key)
        after = stats()
        assert after["reserve_bytes"] == reserve and after["capacity_bytes"] == capacity
        assert after["used_bytes"] <= capacity - reserve
        assert 1 <= len(on_s4) <= 3 and after["free_bytes"] - 2 * MIB < reserve  # s4 filled up, then no more
        for key, body in bodies.items():
            assert s3.get_object(Bucket="full", Key=key)["Body"].read() == body, key
        for key in on_s4:
            s3.delete_object(Bucket="full", Key=key)
            del bodies[key]
        freed = len(on_s4) * (2 * MIB - 64 * KIB)  # less the tombstones, a few hundred bytes each
        eventually(lambda: stats()["free_bytes"] >= after["free_bytes"] + freed, timeout=15,
                   message=lambda: f"s4's space to come back: {stats()}")
        for key, body in bodies.items():
            assert s3.get_object(Bucket="full", Key=key)["Body"].read() == body, key
        print(json.dumps({"s4_before_deletes": after, "s4_after": stats()}))


def test_the_leader_marks_a_filling_node_full_and_up_again_after_deletes(tmp_path):
    """s4 (16 MiB) fills without ever refusing a blob: once its free space is below twice
    its reserve the leader marks it ``full`` and writes skip it, at full redundancy;
    deleting its blob files (collected by garbage collection: short grace here) brings it
    back ``up``; nothing is lost."""
    capacity = 16 * MIB
    reserve = default_reserve(capacity)
    with cluster_with_capped_node(tmp_path, capacity) as (s3, internals, s4):

        def s4_state() -> str:
            node = internals._run(lambda m, s: m.get_cluster_map()).node("s4")
            return node.state if node else "unknown"

        eventually(lambda: s4_state() == "up", timeout=20, message="s4 to join up")
        s3.create_bucket(Bucket="filling")
        bodies: dict[str, bytes] = {}
        on_s4: list[str] = []

        def put(key: str, size: int) -> tuple[str, ...]:
            bodies[key] = os.urandom(size)
            s3.put_object(Bucket="filling", Key=key, Body=bodies[key])
            placement = internals.version("filling", key).placement
            assert len(set(placement)) == 3, (key, placement)  # full redundancy, on distinct nodes
            return placement

        # Blob files while they surely fit (no 507: the gateway never suspects s4), then
        # segment records smaller than the reserve, until the leader calls s4 full.
        i = 0
        while s4.stats(internals)["free_bytes"] > 2 * reserve + 3 * MIB:
            i += 1
            if "s4" in put(f"big/{i}", 2 * MIB):
                on_s4.append(f"big/{i}")
            assert i < 40, s4.stats(internals)
        assert on_s4, "no blob file landed on s4"
        for j in range(200):
            if s4_state() == "full":
                break
            put(f"small/{j}", 256 * KIB)
        assert s4_state() == "full", s4.stats(internals)
        assert s4.stats(internals)["free_bytes"] >= reserve  # it never had to refuse

        def lands_elsewhere() -> bool:  # once the gateway holds the new map (long poll)
            return "s4" not in put(f"while-full/{len(bodies)}", 64 * KIB)

        eventually(lands_elsewhere, timeout=10, interval=0.2, message="writes to skip the full s4")
        for _ in range(6):
            assert lands_elsewhere()
        for key in on_s4:  # deletes work on a full node
            s3.delete_object(Bucket="filling", Key=key)
            del bodies[key]
        eventually(lambda: s4_state() == "up", timeout=30, interval=0.3,
                   message=lambda: f"s4 to be up again: {s4_state()} {s4.stats(internals)}")
        for key, body in bodies.items():
            assert s3.get_object(Bucket="filling", Key=key)["Body"].read() == body, key

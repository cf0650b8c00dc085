"""Membership and rebalancing on real processes.

- A 7th storage node started with ``--join`` waits outside the ring until ``objstore node
  add``; then the rebalancer moves its share to it: the bytes moved are measured (at most
  1.3/7 of the stored bytes), every object reads back, and strong reads through the S3
  gateway stay linearizable during the move (the register workload of
  tests/linearizability, run against the gateway).
- Drain a node, remove it (refused while it still holds data), then SIGKILL another: every
  object still reads back. ``ok-to-stop`` answers yes while every object keeps its write
  quorum and no once another node holding the same objects is down (CLI exit code and the
  HTTP endpoint's 200 / 412).
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import hashlib
import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from objstore import internal_auth
from objstore.cli_args import SECRET_ENV
from objstore.errors import PreconditionFailed
from ops.cli.main import main
from tests.cluster_harness import ROOT, TEST_RESERVE_BYTES, LocalCluster, free_port
from tests.integration.conftest import make_s3
from tests.integration.internals import ClusterInternals
from tests.integration.test_object_info import cli
from tests.integration.test_repair import create_bucket, metric
from tests.linearizability.checker import assert_linearizable
from tests.linearizability.history import CAS_OK, UNKNOWN, Outcome, Recorder, default_classify
from tests.linearizability.workload import ClientState, Tally, run_client

pytestmark = pytest.mark.integration

FLAGS = ("--node-timeout", "1", "--rebalance-rate", "200", "--repair-rate", "200")


def put_objects(s3, bucket: str, count: int, rng: random.Random) -> dict[str, bytes]:
    data = {f"obj/{i:04d}": rng.randbytes(rng.choice((1000, 40_000, 150_000))) for i in range(count)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), data.items()))
    return data


def read_all(s3, bucket: str, data: dict[str, bytes]) -> list[str]:
    """Keys that do not read back byte-identical."""
    with ThreadPoolExecutor(8) as pool:
        got = dict(pool.map(lambda k: (k, s3.get_object(Bucket=bucket, Key=k)["Body"].read()), data))
    return [k for k in data if got[k] != data[k]]


def placements(cluster: LocalCluster, bucket: str, keys) -> dict[str, tuple[str, ...]]:
    internals = ClusterInternals(cluster)
    versions = internals._run(lambda m, s: asyncio.gather(*(m.get_object(bucket, k) for k in keys)))
    return {k: v.placement for k, v in zip(keys, versions)}


def node_cli(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess:
    """``objstore node ARGS`` run in this process (the same parser and code as the command;
    no interpreter start per call)."""
    argv = ["node", *args, "--data-dir", str(cluster.data_dir)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def rebalance_status(cluster: LocalCluster) -> dict:
    return ClusterInternals(cluster)._run(lambda m, s: m.rebalance_status())


def node_rows(cluster: LocalCluster) -> dict[str, dict]:
    return {n["node_id"]: n for n in ClusterInternals(cluster)._run(lambda m, s: m.list_nodes())["nodes"]}


def wait_balanced(cluster: LocalCluster, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = rebalance_status(cluster)
        if st["balanced"] and st["in_flight"] == 0 and st["queued"] == 0:
            return st
        assert time.monotonic() < deadline, f"not balanced after {timeout}s: {st}"
        time.sleep(0.2)


def node_row(cluster: LocalCluster, node: str) -> dict:
    out = node_cli(cluster, "list", "--json")
    assert out.returncode == 0, out.stderr
    return next(n for n in json.loads(out.stdout)["nodes"] if n["node_id"] == node)


def start_joining_node(cluster: LocalCluster, node: str, tmp: Path) -> subprocess.Popen:
    secret = json.loads((cluster.data_dir / "credentials.json").read_text())["cluster_secret"]
    meta = ",".join(p["address"] for p in cluster.processes("metadata"))
    log = open(tmp / f"{node}.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "storage", "--node-id", node, "--data-dir", str(tmp / node),
         "--port", str(free_port()), "--zone", "zone-a", "--metadata", meta, "--join",
         "--heartbeat-interval", "0.25", "--rebalance-rate", "200", "--reserve-bytes", str(TEST_RESERVE_BYTES)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, SECRET_ENV: secret})
    log.close()
    return proc


class S3Register:
    """The register operations of tests.linearizability through the S3 gateway (boto3 in a
    thread): a value is an object's body; cas is a conditional PUT (If-Match on the MD5
    ETag of the expected value, If-None-Match: * for absent)."""

    def __init__(self, s3, bucket: str) -> None:
        self.s3, self.bucket = s3, bucket

    async def put(self, key: str, value: str) -> None:
        await asyncio.to_thread(self.s3.put_object, Bucket=self.bucket, Key=key, Body=value.encode())

    async def get(self, key: str) -> str | None:
        def get() -> str | None:
            try:
                return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "NoSuchKey":
                    return None
                raise
        return await asyncio.to_thread(get)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.s3.delete_object, Bucket=self.bucket, Key=key)

    async def cas(self, key: str, expected: str | None, value: str) -> str:
        cond = {"IfNoneMatch": "*"} if expected is None else \
            {"IfMatch": '"' + hashlib.md5(expected.encode()).hexdigest() + '"'}
        try:
            await asyncio.to_thread(self.s3.put_object, Bucket=self.bucket, Key=key, Body=value.encode(), **cond)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("PreconditionFailed", "NoSuchKey"):
                raise PreconditionFailed() from None
            raise
        return CAS_OK


def classify(kind: str, exc: BaseException) -> Outcome | None:
    """As the metadata workload's, plus boto3's errors: a 5xx or a connection failure is unknown."""
    if isinstance(exc, ClientError):
        return UNKNOWN if exc.response["ResponseMetadata"]["HTTPStatusCode"] >= 500 else None
    if isinstance(exc, BotoCoreError):
        return UNKNOWN
    return default_classify(kind, exc)


async def linearizable_while(s3, bucket: str, done, seconds: float) -> Recorder:
    """Four S3 register clients on three keys until ``done()`` (polled) or ``seconds``."""
    recorder = Recorder(classify=classify)
    stop = asyncio.Event()
    reg = S3Register(s3, bucket)
    tasks = [asyncio.create_task(run_client(recorder, reg, ClientState(i, random.Random(i)), ["x", "y", "z"], stop))
             for i in range(4)]
    start = time.monotonic()
    while time.monotonic() < start + seconds:
        await asyncio.sleep(0.5)
        if time.monotonic() > start + 3 and await asyncio.to_thread(done):
            break
    stop.set()
    await asyncio.gather(*tasks)
    return recorder


def test_a_seventh_node_joins_and_takes_its_share(tmp_path):
    with LocalCluster(tmp_path / "data", storage_nodes=6, extra_args=FLAGS) as cluster:
        s3 = make_s3(cluster)
        create_bucket(s3, "load", "replica:3")
        create_bucket(s3, "reg", "replica:3")
        data = put_objects(s3, "load", 160, random.Random(3))
        before = placements(cluster, "load", data)
        proc = start_joining_node(cluster, "s7", tmp_path)
        try:
            deadline = time.monotonic() + 20
            while "s7" not in node_rows(cluster):
                assert time.monotonic() < deadline, "s7 did not register"
                time.sleep(0.3)
            assert node_row(cluster, "s7")["state"] == "joining"
            assert node_cli(cluster, "drain", "s7").returncode != 0  # joining: nothing to drain
            added = node_cli(cluster, "add", "s7")
            assert added.returncode == 0 and "joining -> up" in added.stdout, added.stdout + added.stderr

            def balanced() -> bool:
                st = rebalance_status(cluster)
                return st["balanced"] and st["in_flight"] == 0 and st["queued"] == 0

            recorder = asyncio.run(linearizable_while(s3, "reg", balanced, 40))
            ops = recorder.history()
            assert Tally.of(ops).reads_of_values > 0, Tally.of(ops).describe()
            assert_linearizable(ops)
            st = wait_balanced(cluster, 45)  # a ring change ends every pass-over (metadata/repair/queue.py)
            shown = cli(cluster, "rebalance", "status")
            assert shown.returncode == 0 and "balanced" in shown.stdout, shown.stdout + shown.stderr
            after = placements(cluster, "load", data)
            total = sum(len(data[k]) * len(before[k]) for k in data)
            moved = sum(len(data[k]) * len(set(after[k]) - set(before[k])) for k in data)
            print(f"bytes moved: {moved} of {total} ({moved / total:.3f}; 1/7 = {1 / 7:.3f}); status {st}")
            assert 0 < moved <= total * 1.3 / 7
            assert all(set(after[k]) - set(before[k]) <= {"s7"} for k in data)  # only to the new node
            assert all(len(set(p)) == 3 for p in after.values())
            assert read_all(s3, "load", data) == []
            s7 = node_row(cluster, "s7")
            assert s7["keys"] > 0 and st["moved_bytes"] > 0
            assert metric(s7["address"], "objstore_rebalance_bytes_total") > 0
            assert sum(metric(p["address"], "objstore_cluster_objects_misplaced")
                       for p in cluster.processes("metadata")) == 0
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def ok_to_stop_http(cluster: LocalCluster, node: str) -> int:
    internals = ClusterInternals(cluster)
    for address in internals.meta_addrs:
        path = f"/v1/nodes/ok-to-stop?node={node}"
        req = urllib.request.Request(f"http://{address}{path}",
                                     headers=internal_auth.headers(internals.secret, "GET", path, target=address))
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            if exc.code != 503:  # 503: not the leader
                return exc.code
    raise AssertionError("no metadata leader answered")


def test_drain_remove_then_lose_another_node(tmp_path):
    with LocalCluster(tmp_path / "data", storage_nodes=6, extra_args=FLAGS) as cluster:
        s3 = make_s3(cluster)
        create_bucket(s3, "keep", "replica:3")
        data = put_objects(s3, "keep", 90, random.Random(5))
        assert node_cli(cluster, "ok-to-stop", "s3").returncode == 0
        assert ok_to_stop_http(cluster, "s3") == 200
        refused = node_cli(cluster, "remove", "s2")
        assert refused.returncode == 1 and "still holds copies" in refused.stderr, refused.stderr
        drained = node_cli(cluster, "drain", "s2")
        assert drained.returncode == 0, drained.stderr
        deadline = time.monotonic() + 90  # bounds, not speed: a loaded 2-core machine drains slowly
        while node_rows(cluster)["s2"]["keys"]:
            assert time.monotonic() < deadline, "s2 was not drained"
            time.sleep(0.2)
        assert read_all(s3, "keep", data) == []  # reads served throughout
        removed = node_cli(cluster, "remove", "s2")
        assert removed.returncode == 0 and "draining -> removed" in removed.stdout, removed.stderr
        cluster.kill_node("s2")
        after = placements(cluster, "keep", data)
        assert not any("s2" in p for p in after.values())
        victim = "s4"
        cluster.kill_node(victim)
        assert read_all(s3, "keep", data) == []  # redundancy held through the drain
        # s4 is gone: any node sharing an object with it would leave that object one copy.
        partner = next(n for n in after[next(k for k in data if victim in after[k])] if n != victim)
        deadline = time.monotonic() + 45
        while True:
            answer = node_cli(cluster, "ok-to-stop", partner, "--json")
            if answer.returncode == 1:
                break
            assert time.monotonic() < deadline, answer.stdout
            time.sleep(0.2)
        d = json.loads(answer.stdout)
        assert not d["ok"] and d["blobs_below_write_quorum"] > 0
        assert ok_to_stop_http(cluster, partner) == 412
        deadline = time.monotonic() + 45  # the leader marks the killed s4 down (until then it counts as up)
        while node_rows(cluster)[victim]["state"] == "up":
            assert time.monotonic() < deadline, node_rows(cluster)[victim]
            time.sleep(0.2)
        dropped = node_cli(cluster, "drain", "s1")  # 4 up nodes left (s1 s3 s5 s6): 3 would stay
        assert dropped.returncode == 0, dropped.stderr
        refused = node_cli(cluster, "drain", "s3")
        assert refused.returncode == 1 and "needs 3" in refused.stderr, refused.stderr

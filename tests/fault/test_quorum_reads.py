"""Quorum and one reads on real processes (``objstore up``: 3 metadata nodes, 3 storage
nodes, replica:3), checked by :mod:`tests.linearizability.quorum`.

Concurrent writers per key record the commit index of every acknowledged PUT; readers GET
at ``quorum`` and ``one``. A seeded nemesis SIGKILLs a storage node, and then two of the
three metadata nodes (no majority left) for the last ~10 s (~7 s in CI's shorter run):
quorum and one reads must continue and stay correct, while strong reads fail fast with 503.

``QUORUM_SEEDS`` (default ``1-5``; a list ``3,7`` or a range ``1-10``) picks the seeds of the
slow variant; CI runs one seed.
"""
from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError

from metadata.api.client import MetadataClient
from tests.cluster_harness import ROOT, LocalCluster
from tests.harness.eventually import eventually
from tests.harness.s3_headers import extra_headers
from tests.integration.conftest import make_s3
from tests.linearizability.history import save_failing_history
from tests.linearizability.nemesis import seeds_from_env
from tests.linearizability.quorum import check_one, check_quorum
from tests.linearizability.s3_workload import Plan, Workload, at_level

pytestmark = pytest.mark.integration

BUCKET = "tunable"


def listed_by_every_metadata_member(cluster: LocalCluster, keys: set[str]) -> bool:
    """Whether every metadata member lists every key of ``keys`` from its own state (a follower
    learns of a commit with the leader's next message; the member left alone answers a LIST
    at ``one`` from what it had applied)."""
    secret = json.loads((cluster.data_dir / "credentials.json").read_text())["cluster_secret"]

    async def ask() -> bool:
        for p in cluster.processes("metadata"):
            async with MetadataClient([p["address"]], secret) as meta:
                listed, _ = await meta.list_objects_local(BUCKET)
            if not keys <= {o.key for o in listed.contents}:
                return False
        return True

    return asyncio.run(ask())


def run_seed(tmp_path, seed: int, seconds: float = 16.0, majority_down_for: float = 10.0) -> None:
    rng = random.Random(seed)
    with LocalCluster(tmp_path / f"data-{seed}", storage_nodes=3,
                      extra_args=("--metadata-nodes", "3", "--default-policy", "replica:3")) as cluster:
        s3 = make_s3(cluster)
        s3.create_bucket(Bucket=BUCKET)
        set_default = subprocess.run(
            [sys.executable, "-m", "ops.cli", "bucket", "set-consistency", BUCKET, "quorum", "--data-dir",
             str(cluster.data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert set_default.returncode == 0, set_default.stderr
        s3.put_object(Bucket=BUCKET, Key="setup", Body=b"first")  # not a key of the workload
        eventually(lambda: s3.get_object(Bucket=BUCKET, Key="setup")["ResponseMetadata"]["HTTPHeaders"]
                   ["x-objstore-consistency"] == "quorum", 10.0,  # once the gateway's cached record expires
                   message="reads without the header to use the bucket's new default")
        plan = Plan(BUCKET, keys=("k0", "k1"), writers=3, readers=("quorum", "quorum", "one"), seconds=seconds)
        events: list[str] = []
        killed_at: list[float] = []
        strong: list[tuple[str, float]] = []
        listed: list[dict] = []

        def nemesis() -> None:
            time.sleep(rng.uniform(1.0, 2.0))
            victim = rng.choice(["s1", "s2", "s3"])
            cluster.kill_node(victim)
            events.append(f"{time.monotonic():.3f} SIGKILL {victim}")
            time.sleep(max(0.0, seconds - majority_down_for - rng.uniform(1.0, 2.0)))
            eventually(lambda: listed_by_every_metadata_member(cluster, {"setup", "k0", "k1"}), 10.0, 0.2,
                       message="every metadata member to have applied the first writes of the keys")
            for m in rng.sample(["m1", "m2", "m3"], 2):
                cluster.kill_node(m)
                events.append(f"{time.monotonic():.3f} SIGKILL {m}")
            killed_at.append(time.monotonic())
            time.sleep(3.0)  # past the gateway's caches: it now runs on its stale window
            began = time.monotonic()
            try:
                with extra_headers(s3, "GetObject", {"x-objstore-consistency": "strong"}):
                    s3.get_object(Bucket=BUCKET, Key="k0")
                strong.append(("answered", time.monotonic() - began))
            except ClientError as err:
                strong.append((err.response["Error"]["Code"], time.monotonic() - began))
            with extra_headers(s3, "ListObjectsV2", {"x-objstore-consistency": "one"}):
                listed.append(s3.list_objects_v2(Bucket=BUCKET))  # the surviving member answers

        history = Workload(lambda: make_s3(cluster), plan, seed).run(during=nemesis)
    quorum, one = check_quorum(at_level(history, "quorum")), check_one(at_level(history, "one"))
    note = f"seed {seed}\n{quorum.render()}\n{one.render()}\nnemesis:\n" + "\n".join(events)
    print(note)
    if not quorum.ok or not one.ok:
        path = save_failing_history(history, note)
        pytest.fail(f"{note}\nhistory: {path}\nreproduce: QUORUM_SEEDS={seed} python -m pytest -q -m slow {__file__}")
    after = [op for op in history if op.kind == "get" and op.call > killed_at[0]]
    assert sum(op.input == "quorum" for op in after) >= 10, "quorum reads stopped with the metadata majority"
    assert sum(op.input == "one" for op in after) >= 5, "one reads stopped with the metadata majority"
    assert any(op.kind == "put" and op.ok for op in history), "no write was acknowledged"
    assert {o["Key"] for o in listed[0]["Contents"]} == {"setup", "k0", "k1"}
    assert listed[0]["ResponseMetadata"]["HTTPHeaders"]["x-objstore-consistency"] == "one"
    code, took = strong[0]
    assert code == "ServiceUnavailable" and took < 5.0, strong


def test_quorum_and_one_reads_stay_correct_while_the_metadata_majority_is_down(tmp_path):
    # 7 s without a majority: past the metadata timeout (3 s) and every cache's lifetime.
    run_seed(tmp_path, 1, seconds=12.0, majority_down_for=7.0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds_from_env("QUORUM_SEEDS", "1-5"))
def test_quorum_and_one_reads_under_seeded_faults(tmp_path, seed):
    run_seed(tmp_path, seed)

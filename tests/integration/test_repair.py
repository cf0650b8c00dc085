"""Self-healing on real processes: a storage node dies for good (SIGKILL, then ``out``), its
copies are re-created elsewhere until nothing is below policy, and then two more nodes
die and every object still reads back byte-identical (so redundancy was restored, not just
reported). For replica:3 on 6 nodes and ec:4+2 on 8; a replica a read found missing is
reported and re-created; and a repair whose node is killed in the middle of a copy leaves
no duplicate or lost placement and is done again elsewhere."""
from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cluster_harness import LocalCluster
from tests.integration.conftest import make_s3
from tests.integration.internals import ClusterInternals
from tests.integration.test_object_info import cli

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
LIVENESS = ("--node-timeout", "1", "--down-after", "3")


def _meta(cluster: LocalCluster, fn):
    """``await fn(metadata client)`` against the cluster."""
    return ClusterInternals(cluster)._run(lambda meta, storage: fn(meta))


def repair_status(cluster: LocalCluster) -> dict:
    return _meta(cluster, lambda m: m.repair_status())


def state_of(cluster: LocalCluster, node: str) -> str:
    return _meta(cluster, lambda m: m.get_cluster_map()).node(node).state


def wait_out(cluster: LocalCluster, node: str, timeout: float = 15) -> list[str]:
    """Poll the map until the leader has marked ``node`` out; the states seen on the way."""
    deadline = time.monotonic() + timeout
    seen = [state_of(cluster, node)]
    while seen[-1] != "out":
        assert time.monotonic() < deadline, f"{node} not out after {timeout}s: {seen}"
        time.sleep(0.1)
        state = state_of(cluster, node)
        if state != seen[-1]:
            seen.append(state)
    return seen


def wait_below(cluster: LocalCluster, want: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    st = repair_status(cluster)
    while st["objects_below_policy"] != want:
        assert time.monotonic() < deadline, f"still below policy after {timeout}s: {st}"
        time.sleep(0.2)
        st = repair_status(cluster)
    return st


def create_bucket(s3, name: str, policy: str) -> None:
    def add_policy(request, **_):
        request.headers["x-objstore-policy"] = policy

    s3.meta.events.register("before-sign.s3.CreateBucket", add_policy)
    try:
        s3.create_bucket(Bucket=name)
    finally:
        s3.meta.events.unregister("before-sign.s3.CreateBucket", add_policy)


def put_objects(s3, bucket: str, sizes: list[int], multipart: int, rng: random.Random) -> dict[str, bytes]:
    data = {f"obj/{i:04d}": rng.randbytes(size) for i, size in enumerate(sizes)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), data.items()))
    for j in range(multipart):
        key = f"mp/{j}"
        up = s3.create_multipart_upload(Bucket=bucket, Key=key)
        parts, bodies = [], [rng.randbytes(5 * MiB), rng.randbytes(300 * 1024 + j)]
        for n, body in enumerate(bodies, 1):
            r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body)
            parts.append({"PartNumber": n, "ETag": r["ETag"]})
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": parts})
        data[key] = b"".join(bodies)
    return data


def check_placements(cluster: LocalCluster, bucket: str, keys, lost: set[str]) -> None:
    """No placement names a node twice or a lost node."""
    versions = _meta(cluster, lambda m: asyncio.gather(*(m.get_object(bucket, k) for k in keys)))
    for key, v in zip(keys, versions):
        for _, placement in v.blob_refs():
            named = [n for n in placement if n]
            assert len(named) == len(set(named)), f"{key}: {placement}"
            assert not set(named) & lost, f"{key}: {placement}"


def read_repair(cluster: LocalCluster, s3, bucket: str, key: str, body: bytes, shard: int = 0) -> None:
    """A replica (or ec shard ``shard``) deleted behind the store's back: a GET still
    answers, reports the copy, and the leader has it re-created on the same node (which is
    up: the copy is rewritten in place, in the same shard slot)."""
    internals = ClusterInternals(cluster)
    v = internals.version(bucket, key)
    victim = v.placement[shard]

    def on_victim():
        return internals._run(lambda meta, storage: storage.head_blob(internals.nodes[victim], v.version_id, shard))

    internals._run(lambda meta, storage: storage.delete_blob(internals.nodes[victim], v.version_id, shard))
    assert on_victim() is None
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    deadline = time.monotonic() + 20
    while on_victim() is None:
        assert time.monotonic() < deadline, "the reported copy was not re-created"
        time.sleep(0.3)
    placement = internals.version(bucket, key).placement
    assert len(set(placement)) == len(v.placement)
    if shard:  # ec: every slot is as it was
        assert placement == v.placement
    else:
        assert set(placement) == set(v.placement)


def metric(address: str, name: str) -> float:
    """The sum of a metric's samples on one process's /metrics (0 when absent)."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def check_metrics(cluster: LocalCluster) -> None:
    alive = [p["address"] for p in cluster.processes("storage") if p["id"] != "s1"]
    assert sum(metric(a, "objstore_repair_objects_total") for a in alive) > 0
    assert sum(metric(a, "objstore_repair_bytes_total") for a in alive) > 0
    exported = []  # the below-policy gauges are on the leader only (a sum over members counts once)
    for p in cluster.processes("metadata"):
        text = urllib.request.urlopen(f"http://{p['address']}/metrics", timeout=5).read().decode()
        if "objstore_cluster_bytes_below_policy" in text:
            exported.append(p["id"])
            assert metric(p["address"], "objstore_cluster_objects_below_policy") == 0
            assert metric(p["address"], "objstore_cluster_bytes_below_policy") == 0
    assert len(exported) == 1, exported


def heal_then_lose_two(cluster: LocalCluster, policy: str, sizes: list[int], multipart: int,
                       check_cli: bool = False, data_shard_repair: str = "") -> None:
    s3 = make_s3(cluster)
    bucket = "heal"
    create_bucket(s3, bucket, policy)
    data = put_objects(s3, bucket, sizes, multipart, random.Random(7))
    assert repair_status(cluster)["objects_below_policy"] == 0
    cluster.kill_node("s1")
    assert wait_out(cluster, "s1")[-2:] == ["down", "out"]
    st = repair_status(cluster)
    assert st["objects_below_policy"] > 0 or st["repaired_objects"] > 0
    st = wait_below(cluster, 0, timeout=45)
    assert st["repaired_objects"] > 0
    if check_cli:
        watch = cli(cluster, "repair", "status", "--watch")  # returns at once: nothing left
        assert watch.returncode == 0 and re.search(r"below policy\s+0\s", watch.stdout), watch.stdout + watch.stderr
        status = cli(cluster, "status")
        assert "below policy 0 objects" in status.stdout, status.stdout
        read_repair(cluster, s3, bucket, "obj/0005", data["obj/0005"])
        check_metrics(cluster)
    check_placements(cluster, bucket, data, {"s1"})
    if data_shard_repair:  # a data shard: a healthy read fetches data shards only
        read_repair(cluster, s3, bucket, data_shard_repair, data[data_shard_repair], shard=1)
    cluster.kill_node("s2")
    cluster.kill_node("s3")
    with ThreadPoolExecutor(8) as pool:
        got = dict(pool.map(lambda k: (k, s3.get_object(Bucket=bucket, Key=k)["Body"].read()), data))
    assert [k for k in data if got[k] != data[k]] == []


def test_replica3_heals_after_a_node_is_lost(tmp_path):
    rng = random.Random(1)
    sizes = [rng.choice((0, 1, 1000, 10_000, 70_000, 300_000)) for _ in range(99)]
    with LocalCluster(tmp_path / "data", storage_nodes=6, extra_args=("--repair-rate", "200", *LIVENESS)) as cluster:
        heal_then_lose_two(cluster, "replica:3", sizes, multipart=3, check_cli=True)


def test_ec42_heals_after_a_node_is_lost(tmp_path):
    sizes = [1000, 200 * 1024, 2 * MiB + 3, 70_000, 0] * 3
    with LocalCluster(tmp_path / "data", storage_nodes=8, extra_args=("--repair-rate", "200", *LIVENESS)) as cluster:
        heal_then_lose_two(cluster, "ec:4+2", sizes, multipart=2, data_shard_repair="obj/0001")


def test_a_repair_killed_mid_copy_is_done_again(tmp_path):
    """Slow repair (1 MB/s) of one 6 MiB object; the node copying it is SIGKILLed mid-copy:
    nothing is committed for it, and once it is out the copy is made on another node."""
    with LocalCluster(tmp_path / "data", storage_nodes=5, extra_args=("--repair-rate", "1", *LIVENESS)) as cluster:
        s3 = make_s3(cluster)
        create_bucket(s3, "slow", "replica:3")
        body = os.urandom(6 * MiB)
        s3.put_object(Bucket="slow", Key="big", Body=body)
        first = ClusterInternals(cluster).version("slow", "big").placement
        lost = first[0]
        cluster.kill_node(lost)
        wait_out(cluster, lost)
        deadline = time.monotonic() + 20
        while True:
            tasks = [t for t in repair_status(cluster)["tasks"] if t["leased"]]
            if tasks:
                break
            assert time.monotonic() < deadline, "no repair started"
            time.sleep(0.2)
        copier = tasks[0]["target"]
        time.sleep(1.0)  # about 1 MB of 6 copied
        cluster.kill_node(copier)
        v = ClusterInternals(cluster).version("slow", "big")
        assert copier not in v.placement and len(v.placement) == 3  # nothing committed mid-copy
        status = cli(cluster, "status", "--json")  # below policy until the copy is done again
        shown = json.loads(status.stdout)
        assert status.returncode == 1, status.stderr
        assert (shown["metadata"]["objects_below_policy"], shown["metadata"]["bytes_below_policy"]) == (1, 6 * MiB)
        assert "1 objects are below their data policy" in shown["health"]["problems"]
        wait_out(cluster, copier)
        wait_below(cluster, 0, timeout=40)
        v = ClusterInternals(cluster).version("slow", "big")
        assert len(set(v.placement)) == 3 and not {lost, copier} & set(v.placement)
        survivors = [n for n in v.placement if n in first]
        assert len(survivors) == 2
        cluster.kill_node(survivors[0])
        cluster.kill_node(survivors[1])  # only the repaired copy is left
        assert s3.get_object(Bucket="slow", Key="big")["Body"].read() == body


def test_a_node_back_after_out_has_its_stale_copies_collected(tmp_path):
    """s1 pauses (SIGSTOP) long enough to be marked out, PUTs meanwhile take a bounded time;
    its copies, and those the PUTs could not give it, are re-created elsewhere; resumed, it is up again, no placement names it, reads never come from it,
    and garbage collection deletes its stale copies (outside their placement, version and
    write on s1 older than the floor: the leader answers "orphan"), while copies written on
    s1 after it is back, which their placements name, are kept."""
    reclaim = ("--gc-grace", "2", "--gc-interval", "0.5")
    with LocalCluster(tmp_path / "data", storage_nodes=4,
                      extra_args=("--repair-rate", "200", *LIVENESS, *reclaim)) as cluster:
        s3 = make_s3(cluster)
        create_bucket(s3, "back", "replica:3")
        data = put_objects(s3, "back", [1000, 70_000, 300_000] * 6, multipart=0, rng=random.Random(3))
        internals = ClusterInternals(cluster)
        on_s1 = {k: internals.version("back", k).version_id for k in data
                 if "s1" in internals.version("back", k).placement}
        assert on_s1

        def held_by_s1() -> int:
            return internals._run(lambda m, s: _count_present(s, internals.nodes["s1"], on_s1.values()))

        assert held_by_s1() == len(on_s1)
        time.sleep(2.5)  # the copies are older than the grace: only the placement keeps them
        cluster.kill_node("s1", signal.SIGSTOP)
        try:
            for i in range(8):  # written while s1 is stopped: each PUT is bounded (straggler timeout)
                key, body = f"paused/{i}", os.urandom(20_000 + i)
                began = time.monotonic()
                s3.put_object(Bucket="back", Key=key, Body=body)
                assert time.monotonic() - began < 2.0 + 4.0, key  # --straggler-timeout 2 s, and a margin
                data[key] = body
            wait_out(cluster, "s1")
            wait_below(cluster, 0, timeout=30)
        finally:
            cluster.kill_node("s1", signal.SIGCONT)
        deadline = time.monotonic() + 15
        while state_of(cluster, "s1") != "up":
            assert time.monotonic() < deadline, "s1 did not come back up"
            time.sleep(0.2)
        check_placements(cluster, "back", data, {"s1"})
        deadline = time.monotonic() + 30
        while held_by_s1():
            assert time.monotonic() < deadline, f"s1 still holds {held_by_s1()} stale copies"
            for key in on_s1:
                assert s3.get_object(Bucket="back", Key=key)["Body"].read() == data[key]
            time.sleep(0.5)
        kept: dict[str, str] = {}  # keys written once s1 is back whose placement names s1
        deadline = time.monotonic() + 20
        for i in range(400):
            key, body = f"after/{i}", os.urandom(2000 + i)
            s3.put_object(Bucket="back", Key=key, Body=body)
            data[key] = body
            v = internals.version("back", key)
            if "s1" in v.placement:
                kept[key] = v.version_id
            if len(kept) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert kept, "no write placed a copy on s1 once it was back up"
        time.sleep(2 + 2 * 0.5 + 1)  # older than the grace, and at least two passes since

        def held(vids) -> int:
            return internals._run(lambda m, s: _count_present(s, internals.nodes["s1"], vids))

        assert held(kept.values()) == len(kept)  # referenced on s1: never collected
        for key, body in data.items():
            assert s3.get_object(Bucket="back", Key=key)["Body"].read() == body, key


async def _count_present(storage, address: str, version_ids) -> int:
    found = await asyncio.gather(*(storage.head_blob(address, vid, 0) for vid in version_ids))
    return sum(f is not None for f in found)

"""Quorum and one reads while the ring changes (a node drained, a node added), against an
in-process cluster: reads consult the key's owners under the old and the new ring epoch
until the gateway has handed the manifests over (:mod:`gateway.ring_epochs`), and a ``one``
read asks one replica at a time."""
from __future__ import annotations

import asyncio
import random
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from objstore.node.app import METRICS
from objstore.ring import build_ring
from tests.harness.cluster import ACCESS_KEY, SECRET_KEY, InProcessCluster, StorageNode
from tests.harness.eventually import eventually_async
from tests.inprocess.test_consistency import BUCKET, get, manifests_on, put
from tests.inprocess.test_quorum_gateways import start_gateway
from tests.linearizability.history import Op
from tests.linearizability.quorum import check_one, check_quorum
from tests.linearizability.s3_workload import Plan, Workload, at_level


def client_of(c: InProcessCluster):
    """A boto3 client of the cluster's gateway (one per workload thread), no retries."""
    return boto3.client("s3", endpoint_url=c.endpoint, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


async def adopt_map(c: InProcessCluster) -> None:
    await c.ctx.topology.refresh()


async def add_node(c: InProcessCluster, node_id: str, zone: str) -> StorageNode:
    """Start ``node_id`` as a joining node, then add it to the ring (``joining -> up``)."""
    node = StorageNode(node_id, c.base / "storage" / node_id, zone, c.meta_address, join=True)
    await node.up()
    c.nodes[node_id] = node

    async def registered() -> bool:
        return (await c.meta.get_cluster_map()).node(node_id) is not None

    await eventually_async(registered, 10.0, message=f"{node_id} to register")
    await c.meta.set_node_state(node_id, "up")
    return node


async def test_a_quorum_read_after_a_drain_sees_the_write_only_old_owners_hold(tmp_path):
    """Owners a, b, c under the old ring; the newest write reached a and b only (W=2, c
    away). a is drained: the new owners are b, c, d. With b away, R=2 from the new owners
    alone (c: an older manifest, d: none) would serve the older version; the read also asks
    the old epoch's owners (a, c) and serves the newest. Once b is back the gateway hands
    the manifests over: c and d hold the newest, the old ring is dropped, and reads ask the
    new owners only. A gateway started while the old ring is kept reads with it too."""
    async with InProcessCluster(tmp_path / "c", storage_nodes=4) as c:
        await c.s3("create_bucket", Bucket=BUCKET)
        a, b, cc = build_ring(c.ctx.topology.map).locate(BUCKET, "k", 3)
        d = next(n for n in c.nodes if n not in (a, b, cc))
        t0 = time.monotonic()
        old = await put(c, "k", b"old")
        t1 = time.monotonic()
        await c.nodes[cc].down()
        new = await put(c, "k", b"new", **{"x-objstore-write-quorum": "2"})
        t2 = time.monotonic()
        await c.nodes[cc].up()
        await c.nodes[b].down()  # the hand-over cannot walk b: the old ring stays
        await c.meta.set_node_state(a, "draining")
        await adopt_map(c)
        assert set(c.ctx.rings.current.locate(BUCKET, "k", 3)) == {b, cc, d}
        assert len(c.ctx.rings.old()) == 1
        t3 = time.monotonic()
        body, h = await get(c, "k", "quorum")
        t4 = time.monotonic()
        assert body == b"new", "a quorum read missed the write the old ring's owners hold"
        assert h["x-objstore-commit-index"] == new["x-objstore-commit-index"]
        assert h["x-objstore-replicas-read"] == "3"  # a, c (old epoch) and d (new)
        # A gateway started now reads with the kept ring too: the cluster map carries it.
        late = await start_gateway(c, "gw3")
        try:
            assert len(late.ctx.rings.old()) == 1
            late_body, late_h = await get(late, "k", "quorum")  # type: ignore[arg-type]
            assert late_body == b"new", "a gateway started during the rebalance read by the new ring alone"
            assert late_h["x-objstore-replicas-read"] == "3"
        finally:
            await late.server.stop()
        history = [Op(0, "put", "k", "old", int(old["x-objstore-commit-index"]), t0, t1, True),
                   Op(0, "put", "k", "new", int(new["x-objstore-commit-index"]), t1, t2, True),
                   Op(1, "get", "k", "quorum", body.decode(), t3, t4, True)]
        assert check_quorum(history).ok

        await c.nodes[b].up()
        await eventually_async(lambda: not c.ctx.rings.old(), 45.0, message="the manifests to be handed over")
        index = int(new["x-objstore-commit-index"])
        on = await manifests_on(c, "k")
        assert on[cc] == index and on[d] == index
        await c.nodes[a].down()  # the drained node leaves: only the current epoch is asked
        body, h = await get(c, "k", "quorum")
        assert body == b"new" and h["x-objstore-replicas-read"] == "2"


async def test_writes_during_a_ring_change_reach_both_epochs(tmp_path):
    """While the old ring is kept, a write's manifest needs W stores among the owners under
    each epoch: with the old epoch's owners away, the write is not promised (503)."""
    async with InProcessCluster(tmp_path / "c", storage_nodes=4) as c:
        await c.s3("create_bucket", Bucket=BUCKET)
        a, b, cc = build_ring(c.ctx.topology.map).locate(BUCKET, "k", 3)
        d = next(n for n in c.nodes if n not in (a, b, cc))
        await put(c, "k", b"first")
        await c.nodes[b].down()  # the old ring stays kept (b cannot be walked)
        await c.meta.set_node_state(a, "draining")
        await adopt_map(c)
        await c.nodes[a].down()
        # Old epoch a, b, c: only c stores; new epoch b, c, d: c and d store.
        with pytest.raises(ClientError) as err:
            await put(c, "k", b"second")
        assert err.value.response["Error"]["Code"] == "ServiceUnavailable"
        await c.nodes[a].up()
        h = await put(c, "k", b"third")
        on = await manifests_on(c, "k")
        index = int(h["x-objstore-commit-index"])
        assert on[a] == on[cc] == on[d] == index  # both epochs' owners (b is away)


def _get_manifest_requests(c: InProcessCluster) -> dict[str, float]:
    out = {}
    for node_id, node in c.nodes.items():
        if node.server is not None:
            m = node.server.app[METRICS]
            out[node_id] = m.requests.labels(m.role, "get_manifests", "200")._value.get()
    return out


async def test_a_one_read_asks_one_replica_and_fails_over(inproc):
    await inproc.s3("create_bucket", Bucket=BUCKET)
    h = await put(inproc, "k", b"v")
    first, second, _third = inproc.ctx.rings.current.locate(BUCKET, "k", 3)
    before = _get_manifest_requests(inproc)
    body, rh = await get(inproc, "k", "one")
    after = _get_manifest_requests(inproc)
    assert body == b"v" and rh["x-objstore-replicas-read"] == "1"
    assert {n: after[n] - before[n] for n in after} == {first: 1, second: 0, _third: 0}
    await inproc.nodes[first].down()
    before = _get_manifest_requests(inproc)
    body, rh = await get(inproc, "k", "one")
    after = _get_manifest_requests(inproc)
    assert body == b"v" and rh["x-objstore-commit-index"] == h["x-objstore-commit-index"]
    assert {n: after[n] - before[n] for n in after} == {second: 1, _third: 0}
    inproc.nodes[second].stall()  # slow, not failed: the next one is asked after the hedge
    try:
        body, _ = await get(inproc, "k", "one")
        assert body == b"v"
    finally:
        inproc.nodes[second].resume()


async def rebalance_history(tmp_path, seed: int, seconds: float) -> None:
    """Writers and quorum/one readers on two keys while, seeded: a node is away for a while
    (W=2 writes miss it), a node is drained, the away node returns, a new node is added,
    and another node is away for a while. Checked by the quorum and one checkers."""
    rng = random.Random(seed)
    async with InProcessCluster(tmp_path / f"c{seed}", storage_nodes=4) as c:
        loop = asyncio.get_running_loop()
        await c.s3("create_bucket", Bucket=BUCKET)
        events: list[str] = []
        epochs_seen: list[int] = []

        def do(coro, what: str) -> None:
            asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)
            events.append(f"{time.monotonic():.3f} {what}")

        def nemesis() -> None:
            ids = sorted(c.nodes)
            away, drained = rng.sample(ids, 2)
            time.sleep(rng.uniform(0.5, 1.0))
            do(c.nodes[away].down(), f"{away} away")
            time.sleep(rng.uniform(0.5, 1.5))
            do(c.meta.set_node_state(drained, "draining"), f"drain {drained}")
            deadline = time.monotonic() + 20
            while c.ctx.topology.map.node(drained).state != "draining" and time.monotonic() < deadline:
                time.sleep(0.05)  # the gateway adopts the new map by its long poll
            epochs_seen.append(len(c.ctx.rings.old()))  # kept: the away node cannot be walked
            time.sleep(rng.uniform(0.3, 1.0))
            do(c.nodes[away].up(), f"{away} back")
            time.sleep(rng.uniform(0.5, 1.0))
            do(add_node(c, "s9", "zone-a"), "add s9")
            time.sleep(rng.uniform(0.5, 1.0))
            other = rng.choice([n for n in ids if n != drained])
            do(c.nodes[other].down(), f"{other} away")
            time.sleep(rng.uniform(1.0, 1.5))
            do(c.nodes[other].up(), f"{other} back")

        plan = Plan(BUCKET, keys=("k0", "k1"), writers=3, readers=("quorum", "quorum", "one"), seconds=seconds,
                    write_quorum=2)
        history = await asyncio.to_thread(Workload(lambda: client_of(c), plan, seed).run, nemesis)
    quorum, one = check_quorum(at_level(history, "quorum")), check_one(at_level(history, "one"))
    note = f"seed {seed}\n{quorum.render()}\n{one.render()}\nnemesis:\n" + "\n".join(events)
    print(note)
    assert quorum.ok and one.ok, note
    assert epochs_seen and epochs_seen[0] >= 1, f"the drain did not change the ring while the workload ran\n{note}"
    reads = [op for op in history if op.kind == "get" and op.input == "quorum"]
    assert len(reads) >= 10 and any(op.kind == "put" and op.ok for op in history), note


async def test_quorum_reads_stay_correct_while_nodes_are_drained_and_added(tmp_path):
    await rebalance_history(tmp_path, 1, 8.0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4, 5])
async def test_quorum_reads_stay_correct_while_nodes_are_drained_and_added_more_seeds(tmp_path, seed):
    await rebalance_history(tmp_path, seed, 12.0)

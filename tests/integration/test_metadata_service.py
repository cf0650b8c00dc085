"""The metadata service as a real process (`python -m metadata`), driven by MetadataClient."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from metadata.api.client import MetadataClient
from objstore import internal_auth
from objstore.cli_args import SECRET_ENV
from objstore.cluster.supervisor import free_port
from objstore.errors import (
    AccessDenied, BucketAlreadyExists, BucketAlreadyOwnedByYou, BucketNotEmpty, InvalidArgument,
    NoSuchBucket, NoSuchKey, ServiceUnavailable,
)
from objstore.types import ClusterMap, Credential, NodeInfo, ObjectVersion
from tests.harness.eventually import eventually

pytestmark = pytest.mark.integration

SECRET = "cluster-secret"
REPO = Path(__file__).resolve().parents[2]


class Server:
    """One `python -m metadata` process."""

    def __init__(self, data_dir: Path, port: int, *extra: str) -> None:
        self.data_dir, self.port, self.extra = data_dir, port, extra
        self.proc: subprocess.Popen | None = None
        self.address = f"127.0.0.1:{port}"

    def start(self) -> "Server":
        self.log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "metadata", "--node-id", "m1", "--data-dir", str(self.data_dir),
             "--port", str(self.port), "--log-level", "WARNING", *self.extra],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, SECRET_ENV: SECRET},
        )
        def healthy() -> bool:
            assert self.proc.poll() is None, f"metadata process exited: {self.proc.returncode}"
            try:
                with urllib.request.urlopen(f"http://{self.address}/health", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        try:
            eventually(healthy, 60, message="the metadata process to become healthy")
        except BaseException:
            self.stop()  # never leave the process behind
            raise
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("meta") / "m1", free_port(), "--default-policy", "replica:2").start()
    yield srv
    srv.stop()


@pytest.fixture
async def client(server):
    cl = MetadataClient([server.address], SECRET, deadline=5.0)
    yield cl
    await cl.close()


def ver(bucket: str, key: str, vid: str = "v1", **kw) -> ObjectVersion:
    return ObjectVersion(bucket, key, vid, 5, "5d41402abc4b2a76b9719d911017c592", 1700000000.25,
                         placement=("n1", "n2"), ring_epoch=1, owner="alice", **kw)


def signed_json(path: str, body: object, target: str) -> dict:
    """Request kwargs for a JSON POST signed with the cluster secret (body included)."""
    data = json.dumps(body).encode()
    return {"data": data, "headers": {**internal_auth.headers(SECRET, "POST", path, body=data, target=target),
                                      "Content-Type": "application/json"}}


async def test_buckets(client):
    b = await client.create_bucket("photos", "alice", "ec:4+2", 1700000000.0)
    assert (b.name, b.owner, b.policy, b.created) == ("photos", "alice", "ec:4+2", 1700000000.0)
    assert await client.get_bucket("photos") == b
    with pytest.raises(BucketAlreadyOwnedByYou):
        await client.create_bucket("photos", "alice", "replica:3", 1.0)
    with pytest.raises(BucketAlreadyExists):
        await client.create_bucket("photos", "bob", "replica:3", 1.0)
    with pytest.raises(InvalidArgument):
        await client.create_bucket("bad", "bob", "raid:5", 1.0)
    dflt = await client.create_bucket("defaulted", "bob", "", 2.0)
    assert dflt.policy == "replica:2"  # the node's --default-policy
    assert [x.name for x in await client.list_buckets(owner="bob")] == ["defaulted"]
    names = [x.name for x in await client.list_buckets()]
    assert names == sorted(names) and {"photos", "defaulted"} <= set(names)
    await client.put_object(ver("photos", "x"))
    with pytest.raises(BucketNotEmpty):
        await client.delete_bucket("photos")
    await client.delete_object("photos", "x")
    await client.delete_bucket("photos")
    with pytest.raises(NoSuchBucket):
        await client.get_bucket("photos")
    with pytest.raises(NoSuchBucket):
        await client.delete_bucket("photos")


async def test_objects_with_odd_keys_round_trip(client):
    await client.create_bucket("odd", "alice", "replica:2", 1.0)
    keys = ["a/b/c", "sp ace", "plus+sign", "q?x=1&y=2", "hash#frag", "pct%2F%41", "../../etc/passwd",
            "ünïcødé/ключ", "\U0001f600", "tab\tand\nnewline", "k" * 1024, "/leading", "a//b", "=;,"]
    for i, k in enumerate(keys):
        assert await client.put_object(ver("odd", k, f"v{i}", user_meta={"m": k[:10]})) is None
    for i, k in enumerate(keys):
        got = await client.get_object("odd", k)
        assert got == ver("odd", k, f"v{i}", user_meta={"m": k[:10]})
    prev = await client.put_object(ver("odd", "q?x=1&y=2", "new"))
    assert prev is not None and prev.version_id == "v3"
    listed, marker = [], None
    while True:
        page = await client.list_objects("odd", start_after=marker, max_keys=3)
        listed += [v.key for v in page.contents]
        if not page.is_truncated:
            break
        marker = page.next_marker
    assert listed == sorted(keys)
    page = await client.list_objects("odd", prefix="a", delimiter="/")
    assert page.common_prefixes == ("a/",) and page.contents == ()
    page = await client.list_objects("odd", delimiter="/", max_keys=1000)
    assert "../" in page.common_prefixes and "ünïcødé/" in page.common_prefixes
    assert await client.delete_object("odd", "sp ace") is not None
    assert await client.delete_object("odd", "sp ace") is None
    with pytest.raises(NoSuchKey):
        await client.get_object("odd", "sp ace")
    with pytest.raises(NoSuchBucket):
        await client.get_object("nope", "k")
    with pytest.raises(NoSuchBucket):
        await client.list_objects("nope")


async def test_cluster_map_and_the_storage_node_registration_route(client, server):
    node = NodeInfo("store-1", "127.0.0.1:9101", zone="z1", capacity_bytes=100)
    path = "/v1/nodes"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://{server.address}{path}", **signed_json(path, {"node": node.to_dict()}, server.address)) as resp:
            assert resp.status == 200
            cmap = ClusterMap.from_dict((await resp.json())["cluster_map"])
    assert cmap.node("store-1") == node
    again = await client.register_node(node)
    assert again.epoch == cmap.epoch
    m = await client.set_node_state("store-1", "draining")
    assert m.epoch == cmap.epoch + 1 and m.node("store-1").state == "draining"
    assert await client.get_cluster_map() == m
    with pytest.raises(InvalidArgument):
        await client.set_node_state("store-1", "asleep")


async def test_credentials(client):
    cred = Credential("AKIAEXAMPLE", "s3cr3t/+=", "alice", "Alice")
    await client.put_credential(cred)
    assert await client.get_credential("AKIAEXAMPLE") == cred
    assert cred in await client.list_credentials()
    await client.delete_credential("AKIAEXAMPLE")
    assert await client.get_credential("AKIAEXAMPLE") is None


async def test_status(client):
    st = await client.status()
    for field in ("node_id", "role", "leader", "term", "commit_index", "applied_index", "log_bytes",
                  "last_snapshot_index", "buckets", "objects", "nodes"):
        assert field in st
    assert st["node_id"] == "m1" and st["role"] == "leader" and st["applied_index"] == st["commit_index"]


async def test_unauthenticated_requests_are_refused(server):
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://{server.address}/v1/status") as resp:
            assert resp.status == 403
            assert (await resp.json())["code"] == "AccessDenied"
        bad = internal_auth.headers("wrong-secret", "POST", "/v1/command")
        async with s.post(f"http://{server.address}/v1/command", json={}, headers=bad) as resp:
            assert resp.status == 403
        async with s.get(f"http://{server.address}/health") as resp:
            assert resp.status == 200
        async with s.get(f"http://{server.address}/metrics") as resp:
            assert resp.status == 200 and "objstore_metadata_applied_index" in await resp.text()
    wrong = MetadataClient([server.address], "wrong-secret")
    with pytest.raises(AccessDenied):
        await wrong.status()
    await wrong.close()


async def test_malformed_command_is_a_client_error(server):
    path = "/v1/command"
    async with aiohttp.ClientSession() as s:
        body = {"v": 1, "type": "DeleteBucket", "args": {"name": 7}}
        async with s.post(f"http://{server.address}{path}", **signed_json(path, body, server.address)) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == "InvalidArgument"


async def test_client_fails_over_from_a_dead_address(server):
    dead = f"127.0.0.1:{free_port()}"
    cl = MetadataClient([dead, server.address], SECRET, deadline=5.0)
    assert (await cl.status())["node_id"] == "m1"
    await cl.close()


async def test_client_raises_service_unavailable_when_nobody_answers():
    cl = MetadataClient([f"127.0.0.1:{free_port()}"], SECRET, deadline=0.5)
    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        await cl.get_cluster_map()
    assert time.monotonic() - t0 < 3
    await cl.close()


async def test_kill_9_during_concurrent_writes_loses_no_acknowledged_command(tmp_path):
    srv = Server(tmp_path / "m1", free_port(), "--snapshot-every", "150").start()
    acked: dict[str, str] = {}
    try:
        cl = MetadataClient([srv.address], SECRET, deadline=1.0)
        await cl.create_bucket("crash", "alice", "replica:3", 1.0)
        enough = asyncio.Event()

        async def writer(w: int) -> None:
            for i in range(10_000):
                key = f"w{w:02d}/k{i:05d}"
                try:
                    await cl.put_object(ver("crash", key, f"v{w}-{i}"))
                except ServiceUnavailable:
                    return
                acked[key] = f"v{w}-{i}"
                if len(acked) >= 400:
                    enough.set()

        tasks = [asyncio.create_task(writer(w)) for w in range(32)]
        await asyncio.wait_for(enough.wait(), 30)
        srv.kill9()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await cl.close()
        assert len(acked) >= 400

        srv = Server(tmp_path / "m1", srv.port).start()
        cl = MetadataClient([srv.address], SECRET, deadline=5.0)
        listed, marker = {}, None
        while True:
            page = await cl.list_objects("crash", start_after=marker, max_keys=1000)
            listed.update({v.key: v.version_id for v in page.contents})
            if not page.is_truncated:
                break
            marker = page.next_marker
        missing = [k for k, vid in acked.items() if listed.get(k) != vid]
        assert missing == []
        assert (await cl.status())["last_snapshot_index"] > 0
        await cl.close()
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.stop()


async def test_sigterm_stops_cleanly_and_state_persists(tmp_path):
    srv = Server(tmp_path / "m1", free_port()).start()
    cl = MetadataClient([srv.address], SECRET)
    await cl.create_bucket("keep", "alice", "replica:3", 3.0)
    await cl.close()
    assert srv.stop() == 0
    srv = Server(tmp_path / "m1", srv.port).start()
    cl = MetadataClient([srv.address], SECRET)
    try:
        assert (await cl.get_bucket("keep")).created == 3.0
    finally:
        await cl.close()
        srv.stop()


async def test_a_command_sent_twice_applies_once(client, server):
    """What a client retry after a lost response looks like on the wire."""
    await client.create_bucket("twice", "alice", "replica:3", 1.0)
    path = "/v1/command"
    first = {"v": 1, "type": "PutObject", "client_id": "retrier", "seq": 1, "ack": 1,
             "args": {"version": ver("twice", "k", "first").to_dict()}}
    second = {**first, "seq": 2, "ack": 1, "args": {"version": ver("twice", "k", "second").to_dict()}}
    results = []
    async with aiohttp.ClientSession() as s:
        for body in (first, second, first):
            async with s.post(f"http://{server.address}{path}", **signed_json(path, body, server.address)) as resp:
                assert resp.status == 200
                results.append((await resp.json())["value"])
    assert results[0]["replaced"] is None and results[1]["replaced"]["version_id"] == "first"
    assert results[2] == results[0]  # the remembered outcome of seq 1, not a second application
    assert (await client.get_object("twice", "k")).version_id == "second"


async def test_a_restarted_client_reusing_its_name_starts_a_fresh_session(server):
    for life in range(2):
        cl = MetadataClient([server.address], SECRET, client_id="gw-restarts")
        for i in range(3):
            await cl.put_credential(Credential(f"AK-life{life}-{i}", "s", "o"))
        await cl.close()
    cl = MetadataClient([server.address], SECRET)
    keys = {x.access_key for x in await cl.list_credentials()}
    await cl.close()
    assert {f"AK-life{life}-{i}" for life in range(2) for i in range(3)} <= keys

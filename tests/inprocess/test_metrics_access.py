"""/metrics behind a bearer token, per-bucket request counts (--bucket-metrics),
/health/ready following what a gateway can reach, the gateway's request log (no secrets)
and the request id on its internal calls: on an in-process cluster."""
from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs, urlsplit

import aiohttp
import boto3
from aiohttp import web
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import HANDLER_ARGS
from gateway.app import create_app as create_gateway
from gateway.metrics import MAX_BUCKET_LABELS, GatewayMetrics
from gateway.request_log import REQUEST_ID
from metadata.app import METRICS as METADATA_METRICS
from objstore.node.app import METRICS as STORAGE_METRICS
from objstore.node.app import STORE
from objstore.http_common import REQUEST_ID_HEADER
from objstore.config import GatewayConfig
from tests.harness.cluster import ACCESS_KEY, HOST, SECRET, SECRET_KEY, Server
from tests.harness.eventually import eventually_async

TOKEN = "metrics-token-for-tests"


async def get(url: str, **headers: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


def samples(text: str, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name}


async def test_token_guards_metrics_and_bucket_metrics_count_per_bucket(inproc):
    cfg = GatewayConfig(gateway_id="gw2", secret=SECRET, metadata=(inproc.meta_address,), host=HOST, port=0,
                        access_key=ACCESS_KEY, secret_key=SECRET_KEY, metrics_token=TOKEN, bucket_metrics=True)
    gw = await Server(create_gateway(cfg), **HANDLER_ARGS).start()
    try:
        base = f"http://{gw.address}"
        assert (await get(f"{base}/metrics"))[0] == 401
        assert (await get(f"{base}/metrics", Authorization="Bearer wrong"))[0] == 401
        assert (await get(f"{base}/health"))[0] == 200  # health never needs the token
        s3 = boto3.client("s3", endpoint_url=base, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                          region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
        await asyncio.to_thread(s3.create_bucket, Bucket="counted")
        await asyncio.to_thread(s3.put_object, Bucket="counted", Key="k", Body=b"x")
        status, text = await get(f"{base}/metrics", Authorization=f"Bearer {TOKEN}")
        assert status == 200
        counted = samples(text, "objstore_s3_bucket_requests_total")
        key = (("bucket", "counted"), ("operation", "PutObject"), ("status_class", "2xx"))
        assert counted[key] == 1.0
        # A bucket named "metrics" is still S3 when signed.
        await asyncio.to_thread(s3.create_bucket, Bucket="metrics")
        assert "metrics" in [b["Name"] for b in (await asyncio.to_thread(s3.list_buckets))["Buckets"]]
    finally:
        await gw.stop()


def test_bucket_labels_are_capped():
    m = GatewayMetrics(bucket_metrics=True)
    for i in range(MAX_BUCKET_LABELS + 5):
        m.observe_bucket(f"b{i}", "GetObject", 200)
    buckets = {s.labels["bucket"] for f in m.registry.collect() for s in f.samples
               if s.name == "objstore_s3_bucket_requests_total"}
    assert len(buckets) == MAX_BUCKET_LABELS + 1 and "_other" in buckets
    assert GatewayMetrics().by_bucket is None  # off unless asked for


async def test_gateway_is_not_ready_without_storage_nodes(inproc):
    ready = f"{inproc.endpoint}/health/ready"
    assert (await get(ready))[0] == 200
    assert (await get(f"http://{inproc.meta_address}/health/ready"))[0] == 200
    for node in inproc.nodes.values():
        await node.down()
    status, body = await get(ready)
    assert status == 503 and "no storage node reachable" in body
    assert (await get(f"{inproc.endpoint}/health/live"))[0] == 200
    await inproc.nodes["s1"].up()
    await eventually_async(lambda: _ready(ready), 10, message="the gateway to be ready again")


async def _ready(url: str) -> bool:
    return (await get(url))[0] == 200


async def test_request_log_line_per_s3_request_without_secrets(inproc, caplog):
    s3 = inproc.s3_client
    await inproc.s3("create_bucket", Bucket="logged")
    await inproc.s3("put_object", Bucket="logged", Key="k", Body=b"y" * 1234)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "logged", "Key": "k"})
    caplog.set_level(logging.INFO, logger="objstore.access")
    caplog.clear()  # the lines above are logged too when an earlier test left the logger at INFO
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        assert resp.status == 200 and len(await resp.read()) == 1234
        request_id = resp.headers["x-amz-request-id"]
    lines = [r for r in caplog.records if r.name == "objstore.access"]
    assert len(lines) == 1
    f = lines[0].fields
    assert (f["request_id"], f["op"], f["bucket"], f["status"], f["bytes_out"]) == (
        request_id, "GetObject", "logged", 200, 1234)
    assert f["latency_ms"] > 0
    query = parse_qs(urlsplit(url).query)  # the presigned query: signature, key id, expiry
    secret_bits = (*query, *(v[0] for v in query.values()), SECRET_KEY)
    for text in (caplog.text, json.dumps(f)):
        assert not any(bit in text for bit in secret_bits)


async def test_internal_calls_carry_the_request_id():
    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.headers.get(REQUEST_ID_HEADER, ""))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/v1/object", echo)
    server = await Server(app).start()
    try:
        metrics = GatewayMetrics()
        async with aiohttp.ClientSession(trace_configs=[metrics.trace_config()]) as s:
            REQUEST_ID.set("REQ123")
            async with s.get(f"http://{server.address}/v1/object") as resp:
                assert resp.status == 200
            REQUEST_ID.set("")
            async with s.get(f"http://{server.address}/v1/object") as resp:
                assert resp.status == 200
        assert seen == ["REQ123", ""]
        count = metrics.registry.get_sample_value("objstore_gateway_backend_request_duration_seconds_count",
                                                  {"backend": "metadata", "call": "GET /v1/object"})
        assert count == 2
    finally:
        await server.stop()


async def test_storage_and_metadata_metrics_follow_the_writes(inproc):
    await inproc.s3("create_bucket", Bucket="tally")
    for i in range(5):
        await inproc.s3("put_object", Bucket="tally", Key=f"k{i}", Body=b"z" * 100)
    await inproc.s3("put_object", Bucket="tally", Key="k0", Body=b"z" * 10)  # replaces k0's null version
    for node in inproc.nodes.values():
        app = node.server.app
        reg, stats = app[STORAGE_METRICS].registry, app[STORE].stats()
        assert reg.get_sample_value("objstore_storage_commit_batch_records_sum", {"node": node.node_id}) \
            == stats["group_committed_records"] > 0
        assert reg.get_sample_value("objstore_storage_fsync_duration_seconds_count", {"node": node.node_id}) \
            == stats["fsyncs"]
        # One scrape. Without --capacity-bytes the node's capacity is its filesystem's size and its
        # free space the filesystem's, which other files share: free is at most capacity - used.
        scrape = {s.name: s.value for f in reg.collect() for s in f.samples}
        assert scrape["objstore_storage_capacity_bytes"] == stats["capacity_bytes"]
        assert scrape["objstore_storage_used_bytes"] == stats["used_bytes"] > 0
        assert 0 < scrape["objstore_storage_free_bytes"] <= stats["capacity_bytes"] - stats["used_bytes"]
    reg = inproc.metadata.app[METADATA_METRICS].registry
    usage = {name: reg.get_sample_value(f"objstore_bucket_{name}", {"bucket": "tally"})
             for name in ("objects", "versions", "bytes", "incomplete_uploads")}
    assert usage == {"objects": 5, "versions": 5, "bytes": 410, "incomplete_uploads": 0}
    assert reg.get_sample_value("objstore_raft_proposal_duration_seconds_count") >= 7
    assert reg.get_sample_value("objstore_raft_role", {"role": "leader"}) == 1
    assert reg.get_sample_value("objstore_cluster_nodes", {"state": "up"}) == len(inproc.nodes)

"""/metrics behind a bearer token, per-bucket request counts (--bucket-metrics), and
/health/ready following what a gateway can reach: on an in-process cluster."""
from __future__ import annotations

import asyncio

import aiohttp
import boto3
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import HANDLER_ARGS
from gateway.app import create_app as create_gateway
from gateway.metrics import MAX_BUCKET_LABELS, GatewayMetrics
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

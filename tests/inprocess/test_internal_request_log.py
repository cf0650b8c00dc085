"""Storage and metadata nodes log failed and slow requests with the gateway's request id
(objstore.internal_request_log): on an in-process cluster."""
from __future__ import annotations

import logging

import aiohttp

import objstore.internal_request_log as request_log
from objstore.internal_request_log import REQUEST_ID_HEADER, level_of
from tests.harness.cluster import SECRET, SECRET_KEY

LOGGER = "objstore.requests"


def _lines(caplog) -> list[dict]:
    return [r.fields for r in caplog.records if r.name == LOGGER]


async def test_a_slow_put_is_logged_by_storage_and_metadata_nodes_with_the_s3_request_id(inproc, caplog,
                                                                                      monkeypatch):
    await inproc.s3("create_bucket", Bucket="traced")
    monkeypatch.setattr(request_log, "SLOW_REQUEST_SECONDS", 0.0)  # every request counts as slow
    caplog.set_level(logging.WARNING, logger=LOGGER)
    resp = await inproc.s3("put_object", Bucket="traced", Key="secret-looking-key", Body=b"z" * 5000)
    request_id = resp["ResponseMetadata"]["RequestId"]
    mine = [f for f in _lines(caplog) if f["request_id"] == request_id]
    roles = {f["role"] for f in mine}
    assert roles == {"storage", "metadata"}, mine
    assert sum(1 for f in mine if f["role"] == "storage" and f["op"] == "put_blob") == 3  # replica:3
    assert all(f["status"] < 400 and f["latency_ms"] >= 0 for f in mine)
    for text in (caplog.text, repr(mine)):
        assert "secret-looking-key" not in text and SECRET not in text and SECRET_KEY not in text


async def test_an_unauthenticated_call_is_logged_as_failed_with_a_cleaned_request_id(inproc, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    node = inproc.nodes["s1"]
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://{node.link.address}/stats",
                         headers={REQUEST_ID_HEADER: "abc-123\tforged=line"}) as resp:
            assert resp.status == 403
    [line] = [f for f in _lines(caplog) if f["role"] == "storage"]
    assert (line["status"], line["request_id"], line["method"]) == (403, "abc-123forgedline", "GET")
    assert "failed" in caplog.records[-1].getMessage()


async def test_ordinary_requests_are_logged_only_at_debug(inproc, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    await inproc.s3("create_bucket", Bucket="quiet")
    await inproc.s3("put_object", Bucket="quiet", Key="k", Body=b"q")
    assert _lines(caplog) == []
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    await inproc.s3("get_object", Bucket="quiet", Key="k")
    assert {f["role"] for f in _lines(caplog)} >= {"storage", "metadata"}


def test_levels():
    assert level_of(200, 0.01, long_poll=False) == logging.DEBUG
    assert level_of(404, 0.01, long_poll=False) == logging.DEBUG  # an answer, not a failure
    assert level_of(500, 0.01, long_poll=False) == logging.WARNING
    assert level_of(507, 0.01, long_poll=False) == logging.WARNING
    assert level_of(403, 0.01, long_poll=False) == logging.WARNING
    assert level_of(200, 2.0, long_poll=False) == logging.WARNING  # slow
    assert level_of(200, 30.0, long_poll=True) == logging.DEBUG  # a long poll waits on purpose

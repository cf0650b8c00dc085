"""The lean front's plain answers encode to the same bytes as the web.Response they replace."""
from __future__ import annotations

import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from objstore.node.hot_front import LeanRequest, LeanResponse, encode_response, whole_response

HEADERS = {"X-Objstore-Size": "4096", "X-Objstore-Bucket": "b", "X-Objstore-Key": "k%2Fx", "Accept-Ranges": "bytes",
           "Content-Range": "bytes 0-2/4096"}


@pytest.mark.parametrize("status", [200, 206, 204])
@pytest.mark.parametrize("close", [False, True])
def test_a_lean_answer_encodes_as_its_web_response_would(status: int, close: bool) -> None:
    body = b"" if status == 204 else b"abc"
    assert encode_response(LeanResponse(status, HEADERS, body), close) == \
        encode_response(web.Response(status=status, headers=HEADERS, body=body), close)


def test_a_whole_answer_is_lean_only_for_a_request_the_lean_front_serves() -> None:
    request = LeanRequest(web.Application(), "GET", "/blobs/v/0", "/blobs/v/0", "", CIMultiDictProxy(CIMultiDict()),
                          {}, b"", 0)
    lean = whole_response(request, 206, HEADERS, b"abc")
    assert type(lean) is LeanResponse and lean.reason == "Partial Content"
    assert type(whole_response(object(), 206, HEADERS, b"abc")) is web.Response


@pytest.mark.parametrize("qs", ["", "ring_epoch=1", "a=1&b=&c", "a=1&&b=2", "a==b", "bucket=x&key=y/z&ring_epoch=3",
                                "=v", "&", "a=1;b=2", "k=a%2Fb", "k=a+b", "k=%E2%82%AC"])
def test_a_lean_requests_query_is_what_parse_qsl_gives(qs: str) -> None:
    from urllib.parse import parse_qsl

    request = LeanRequest(web.Application(), "PUT", "/manifests?" + qs, "/manifests", qs,
                          CIMultiDictProxy(CIMultiDict()), {}, b"", 0)
    assert list(request.query.items()) == parse_qsl(qs, keep_blank_values=True)


async def test_manifest_answers_are_lean_for_the_lean_front(tmp_path) -> None:
    from objstore.node import app as nodeapp

    class Manifests:
        async def put(self, manifest, epoch):  # noqa: ANN001, ANN201
            return True

        async def put_many(self, manifests, epoch):  # noqa: ANN001, ANN201
            return len(manifests)

    app = web.Application()
    app[nodeapp.MANIFESTS] = Manifests()  # type: ignore[assignment]
    from objstore.manifest import CommitManifest
    from objstore.types import ObjectVersion

    m = CommitManifest("b", "k", 1, ObjectVersion("b", "k", "v1", 4, "0" * 32, 1.0, placement=("s1",), ring_epoch=1),
                       write_quorum=1).to_dict()
    import json
    for handler, body, want in ((nodeapp.put_manifest, m, b'{"stored": true}'),
                                (nodeapp.put_manifest_batch, {"manifests": [m, m], "ring_epoch": 1}, b'{"stored": 2}')):
        request = LeanRequest(app, "PUT", "/manifests?ring_epoch=1", "/manifests", "ring_epoch=1",
                              CIMultiDictProxy(CIMultiDict()), {}, json.dumps(body).encode(), 0)
        resp = await handler(request)
        assert type(resp) is LeanResponse and resp.body == want
        assert encode_response(resp, False) == encode_response(
            web.Response(status=200, body=want, content_type="application/json"), False)

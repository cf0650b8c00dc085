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

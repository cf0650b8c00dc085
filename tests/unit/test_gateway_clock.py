"""The gateway authenticates at the time of its injected clock (``GatewayContext.clock``),
not the machine's: a request from AWS's documentation (signed 2013-05-24) is accepted when
the clock says that day and refused as skewed a day later."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.caller import Caller
from gateway.middleware import authenticate
from objstore.errors import RequestTimeTooSkewed
from objstore.types import Credential
from tests.unit.test_sigv4 import DOC_AK, DOC_NOW, DOC_SECRET, EMPTY, doc_auth

SIGNED_AT = DOC_NOW.timestamp()
HEADERS = {  # AWS's documented example: GET /test.txt with a Range
    "Host": "examplebucket.s3.amazonaws.com", "Range": "bytes=0-9", "x-amz-content-sha256": EMPTY,
    "x-amz-date": "20130524T000000Z",
    "Authorization": doc_auth("host;range;x-amz-content-sha256;x-amz-date",
                              "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
}


def context(now: float) -> SimpleNamespace:
    async def credential(access_key: str) -> Credential | None:
        return Credential(DOC_AK, DOC_SECRET, owner="doc-owner") if access_key == DOC_AK else None

    cfg = SimpleNamespace(max_skew_seconds=900, virtual_host_suffixes=("s3.amazonaws.com",))
    return SimpleNamespace(cfg=cfg, credential=credential, clock=lambda: now)


def test_authentication_reads_the_injected_clock():
    request = make_mocked_request("GET", "/test.txt", headers=HEADERS)
    caller = asyncio.run(authenticate(context(SIGNED_AT), request))  # type: ignore[arg-type]
    assert isinstance(caller, Caller) and caller.owner == "doc-owner" and caller.auth.payload_mode == "signed"
    with pytest.raises(RequestTimeTooSkewed):
        asyncio.run(authenticate(context(SIGNED_AT + 86400), request))  # type: ignore[arg-type]

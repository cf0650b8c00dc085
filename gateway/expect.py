"""The ``Expect`` request header, answered as S3 answers it.

``Expect: 100-continue`` (any case) gets an interim ``100 Continue`` on HTTP/1.1 before the
body is read; any other value is ignored and the request is served as if it were absent
(aiohttp's default would answer 417 Expectation Failed, which S3 never does).
"""
from __future__ import annotations

from aiohttp import HttpVersion11, web


async def continue_or_ignore(request: web.Request) -> None:
    """The gateway route's ``expect_handler``."""
    if request.version == HttpVersion11 and request.headers.get("Expect", "").strip().lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim response is not part of the answer's size

"""Sending objstore's own request headers (``x-objstore-*``) through boto3: they are added in
the ``before-sign`` event, so the request signature covers them (the gateway refuses
unsigned ones)."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping


@contextlib.contextmanager
def extra_headers(client: Any, operation: str, headers: Mapping[str, str]) -> Iterator[None]:
    """While the block runs, every ``operation`` (e.g. "GetObject") call of ``client`` carries ``headers``."""
    def add(request: Any, **_: Any) -> None:
        for name, value in headers.items():
            request.headers[name] = value

    client.meta.events.register(f"before-sign.s3.{operation}", add)
    try:
        yield
    finally:
        client.meta.events.unregister(f"before-sign.s3.{operation}", add)


def response_headers(response: Mapping[str, Any]) -> dict[str, str]:
    """A boto3 response's HTTP headers (names in lower case)."""
    return dict(response["ResponseMetadata"]["HTTPHeaders"])

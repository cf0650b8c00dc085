"""What a metadata client reports when no member answered within its deadline."""
from __future__ import annotations

import asyncio

import pytest

from metadata.api.client import MetadataClient
from objstore.errors import ServiceUnavailable


async def test_a_last_try_cut_short_by_the_deadline_keeps_the_earlier_failure() -> None:
    """Every full try fails at once with a telling error (here: a refused certificate); the
    last one, given only what is left of the deadline, times out. The error names the refused
    certificate, not the cut-short try's timeout."""
    async with MetadataClient(["127.0.0.1:1", "127.0.0.1:2"], "secret", deadline=0.5, attempt_timeout=0.3) as meta:
        async def attempt(addr, method, path_qs, data, timeout):
            if timeout >= meta.attempt_timeout:
                await asyncio.sleep(0.12)
                raise OSError(f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed ({addr})")
            await asyncio.sleep(timeout)
            raise asyncio.TimeoutError()

        meta._attempt = attempt
        with pytest.raises(ServiceUnavailable) as err:
            await meta.get_credential("AKID")
    assert "CERTIFICATE_VERIFY_FAILED" in err.value.message, err.value.message

"""A storage node's heartbeats: until the first one is accepted (the node is not in the
cluster map yet) failed tries are retried within FIRST_RETRY_CAP; afterwards, within the
heartbeat interval."""
from __future__ import annotations

import asyncio

import pytest

from objstore.config import StorageConfig
from objstore.node import heartbeat


@pytest.mark.parametrize("interval", [2.0, 0.1])
async def test_retries_are_quick_until_the_first_heartbeat_is_accepted(monkeypatch, interval):
    calls: list[dict] = []

    async def accepted_at_once(cfg, path, payload, session, **kw):
        calls.append(kw)
        if len(calls) == 3:
            raise asyncio.CancelledError
        return "127.0.0.1:7000"

    async def no_sleep(seconds: float) -> None:
        pass

    monkeypatch.setattr(heartbeat, "post_until_accepted", accepted_at_once)
    monkeypatch.setattr(heartbeat.asyncio, "sleep", no_sleep)
    cfg = StorageConfig(node_id="s1", data_dir="/unused", secret="x", metadata=("127.0.0.1:7000",),
                        heartbeat_interval=interval)
    with pytest.raises(asyncio.CancelledError):
        await heartbeat.heartbeat_loop(cfg, lambda: {}, session=None)  # type: ignore[arg-type]
    first_cap = min(interval, heartbeat.FIRST_RETRY_CAP)
    assert (calls[0]["max_delay"], calls[0]["base_delay"]) == (first_cap, min(0.2, first_cap))
    assert calls[0]["prefer"] == ""
    for later in calls[1:]:  # the node is registered: the interval bounds its retries again
        assert later["max_delay"] == interval and later["prefer"] == "127.0.0.1:7000"

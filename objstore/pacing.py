"""Pacing a stream of work to a rate: a token bucket with an injected clock and sleep.

Pure apart from the sleep it is given; tests pass a fake clock whose sleep advances it,
so pacing is tested in milliseconds.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """Paces a stream of reads to ``rate`` bytes/s, allowing bursts of ``burst`` bytes.

    ``take(n)`` charges ``n`` bytes and sleeps until the bucket is no longer in debt, so
    over any long run the bytes taken stay within ``burst + rate * elapsed``. A rate of 0
    (or less) sets no limit: ``take`` returns at once.
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        if rate > 0 and burst <= 0:
            raise ValueError("a paced bucket needs a positive burst")
        self.rate, self.burst = rate, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = burst
        self._last = clock()

    async def take(self, n: int) -> None:
        if self.rate <= 0:  # no limit
            return
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= n
        if self._tokens < 0:
            await self._sleep(-self._tokens / self.rate)

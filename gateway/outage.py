"""Whether the metadata service was just found unreachable (no majority, or no node).

While an outage is recent (``hold`` seconds after the last failed call), the gateway's
caches serve their records stale at once (within the stale window) instead of each
waiting for the metadata deadline again; the first call after ``hold`` asks again.
"""
from __future__ import annotations

import time
from typing import Callable


class Outage:
    def __init__(self, hold: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold = hold
        self._clock = clock
        self._until = 0.0

    def note(self) -> None:
        """A metadata call just failed with ServiceUnavailable."""
        self._until = self._clock() + self.hold

    def clear(self) -> None:
        """The metadata service answered again: ask it from now on."""
        self._until = 0.0

    def active(self) -> bool:
        return self._clock() < self._until

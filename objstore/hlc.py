"""Version ids: a hybrid logical clock timestamp plus the issuing gateway's id.

``HLC.next()`` returns ids that are unique (the gateway id breaks ties between gateways)
and strictly increasing per gateway even if the wall clock steps back; ids from different
gateways order by physical time first. Format: ``{ms:012x}{logical:04x}-{gateway_id}``,
all characters in ``[0-9a-z._-]``, so lexical order is time order.
"""
from __future__ import annotations

import re
import threading
import time
from typing import Callable

_ID_RE = re.compile(r"^[0-9a-f]{16}-[0-9A-Za-z._-]{1,64}$")


class HLC:
    def __init__(self, node_id: str, clock: Callable[[], float] = time.time) -> None:
        if not re.fullmatch(r"[0-9A-Za-z._-]{1,64}", node_id):
            raise ValueError(f"invalid HLC node id {node_id!r}")
        self.node_id = node_id
        self._clock = clock
        self._ms = 0
        self._logical = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            now_ms = int(self._clock() * 1000)
            if now_ms > self._ms:
                self._ms, self._logical = now_ms, 0
            else:
                self._logical += 1
                if self._logical > 0xFFFF:  # more than 65536 ids in one ms: borrow the next ms
                    self._ms, self._logical = self._ms + 1, 0
            return f"{self._ms:012x}{self._logical:04x}-{self.node_id}"

    def observe(self, version_id: str) -> None:
        """Move the clock past a version id seen from elsewhere."""
        ms = int(version_id[:12], 16)
        logical = int(version_id[12:16], 16)
        with self._lock:
            if (ms, logical) > (self._ms, self._logical):
                self._ms, self._logical = ms, logical


def is_version_id(text: str) -> bool:
    return bool(_ID_RE.match(text))


def version_time(version_id: str) -> float:
    """The physical time (unix seconds) a version id was issued at."""
    return int(version_id[:12], 16) / 1000.0

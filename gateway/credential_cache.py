"""The gateway's cache of access keys -> credentials, bounded against floods of unknown keys.

Every signed request names an access key before it proves anything, so this cache is
reachable by anyone. Invariants:

* Memory is bounded: at most ``max_entries`` known keys and ``max_unknown`` unknown ones
  are held, each set evicting its least recently used first (so unknown keys never push
  out known ones), each key at most :data:`MAX_ACCESS_KEY_LENGTH` characters; a key longer
  than that, or not printable ASCII, is refused with InvalidAccessKeyId before any lookup.
* A known key is cached ``ttl`` seconds, an unknown one ``negative_ttl`` seconds (short,
  so a key created a moment ago soon works).
* Concurrent lookups of one key share one metadata read.
* With ``stale_window`` > 0, a known key whose refresh fails with ServiceUnavailable (no
  metadata majority) is still served for ``stale_window`` seconds past its expiry
  (``stale_age`` says how old the record in use is). A key revoked meanwhile therefore
  keeps working that long: revocation within ``ttl`` holds only while a majority is up.
* Reads for keys the cache holds nothing about are limited to ``misses_per_second`` (with
  a burst of the same size); past that the request is answered SlowDown (503, which
  clients retry) instead of reaching the metadata service. Refreshes of keys known to
  exist are not limited, so a flood of bogus keys cannot lock out real users.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from gateway.outage import Outage
from objstore.errors import InvalidAccessKeyId, ServiceUnavailable, SlowDown
from objstore.types import Credential

MAX_ACCESS_KEY_LENGTH = 128  # SigV4 access key ids are 16 to 128 characters
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_UNKNOWN = 2_000
DEFAULT_TTL = 5.0
DEFAULT_NEGATIVE_TTL = 2.0
DEFAULT_MISSES_PER_SECOND = 50.0

Lookup = Callable[[str], Awaitable[Credential | None]]


def check_access_key_shape(access_key: str) -> None:
    """Raise InvalidAccessKeyId for a key no credential can have (too long, odd characters)."""
    if not 0 < len(access_key) <= MAX_ACCESS_KEY_LENGTH or not access_key.isascii() \
            or not access_key.isprintable() or " " in access_key:
        raise InvalidAccessKeyId(AWSAccessKeyId=access_key[:MAX_ACCESS_KEY_LENGTH])


class CredentialCache:
    """Access key -> Credential (or None for unknown), with the bounds in the module doc."""

    def __init__(self, lookup: Lookup, *, max_entries: int = DEFAULT_MAX_ENTRIES,
                 max_unknown: int = DEFAULT_MAX_UNKNOWN,
                 ttl: float = DEFAULT_TTL, negative_ttl: float = DEFAULT_NEGATIVE_TTL,
                 misses_per_second: float = DEFAULT_MISSES_PER_SECOND,
                 clock: Callable[[], float] = time.monotonic, stale_window: float = 0.0,
                 outage: Outage | None = None) -> None:
        self._lookup = lookup
        self.max_entries = max_entries
        self.max_unknown = max_unknown
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._rate = misses_per_second
        self._clock = clock
        self._known: OrderedDict[str, tuple[float, Credential]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()  # key -> expiry
        self._inflight: dict[str, asyncio.Future[Credential | None]] = {}
        self._tokens = misses_per_second
        self._refilled = clock()
        self._stale_window = stale_window
        self.stale_age = 0.0  # seconds past expiry of the last record served stale (0: fresh)
        self._outage = outage or Outage(negative_ttl, clock)  # while active: stale records served without asking

    def __len__(self) -> int:
        return len(self._known) + len(self._unknown)

    def _take_token(self, now: float) -> bool:
        self._tokens = min(self._rate, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _store(self, access_key: str, cred: Credential | None, now: float) -> None:
        if cred is None:
            self._known.pop(access_key, None)
            self._unknown[access_key] = now + self._negative_ttl
            self._unknown.move_to_end(access_key)
            while len(self._unknown) > self.max_unknown:
                self._unknown.popitem(last=False)
            return
        self._unknown.pop(access_key, None)
        self._known[access_key] = (now + self._ttl, cred)
        self._known.move_to_end(access_key)
        while len(self._known) > self.max_entries:
            self._known.popitem(last=False)

    async def get(self, access_key: str) -> Credential | None:
        """The credential for ``access_key``, or None if there is none.

        Raises InvalidAccessKeyId for a malformed key, SlowDown when the budget of
        uncached lookups is spent, and whatever the lookup raises.
        """
        check_access_key_shape(access_key)
        now = self._clock()
        hit = self._known.get(access_key)
        if hit is not None and hit[0] > now:
            self._known.move_to_end(access_key)
            return hit[1]
        if self._unknown.get(access_key, 0.0) > now:
            self._unknown.move_to_end(access_key)
            return None
        if hit is not None and self._outage.active() and now - hit[0] <= self._stale_window:
            self.stale_age = now - hit[0]
            return hit[1]
        pending = self._inflight.get(access_key)
        if pending is not None:
            return await asyncio.shield(pending)
        if hit is None and not self._take_token(now):
            raise SlowDown("Too many requests with unknown access keys; please retry.")
        future: asyncio.Future[Credential | None] = asyncio.get_running_loop().create_future()
        self._inflight[access_key] = future
        try:
            cred = await self._lookup(access_key)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except ServiceUnavailable as exc:
            if hit is not None and now - hit[0] <= self._stale_window:
                self.stale_age = now - hit[0]
                self._outage.note()
                future.set_result(hit[1])
                return hit[1]
            future.set_exception(exc)
            future.exception()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody need log it
            raise
        finally:
            del self._inflight[access_key]
        self._store(access_key, cred, self._clock())
        self.stale_age = 0.0
        future.set_result(cred)
        return cred

"""A metadata client's commands, coalesced while one is in flight (``POST /v1/commands``).

Every state change a client makes (:meth:`metadata.api.client.MetadataClient._command`)
goes through one lane (:class:`objstore.coalescing.Lanes`): a command that finds none in
flight goes at once, alone (``POST /v1/command``, as without coalescing); those that come
meanwhile go together in one ``POST /v1/commands`` after it (at most :data:`MAX_BATCH`).
The leader proposes them at once (one Raft batch) and pays its HTTP serve cost once per
call instead of once per command. All commands go this way, not only object writes: a
command alone costs what it cost before, and rare ones gain nothing but lose nothing.

Invariants:
- Each command keeps its own session (client id, sequence number), so one resent (the batch
  call retried after a lost answer, or a command resent alone) is applied once and answers
  its first outcome.
- A caller gets what a single call would give it: its command's result or its error (one
  command's PreconditionFailed does not fail the others); a batch call that fails (no
  leader before the deadline, ...) fails every command it carried with that error. A
  command whose result is NotLeader or ServiceUnavailable (leadership lost while it waited
  in the log) is resent alone, as a single call would retry it, within what is left of
  the batch call's deadline (with nothing left it fails ServiceUnavailable unsent, as a
  single call whose deadline ran out).
- Bounded: at most :data:`MAX_WAITING` commands wait (more go alone), and a command over
  :data:`MAX_ITEM_BYTES` goes alone, so a batch body stays below the service's limit
  (:data:`metadata.command_batch_http.MAX_BODY`).
- Bounded in time as a single call: a caller is answered within the client's deadline of
  sending, as without coalescing. Commands wait only behind a call that has run less than
  half the deadline; behind one that has run longer (no leader, a leader cut off from its
  majority) they go in a call of their own, given what is left of their deadline, instead
  of waiting for that call to time out and then for their own.
- A metadata service without the route (older than the client: 404/405) gets single calls;
  the route is tried again :data:`objstore.coalescing.RETRY_ROUTE_AFTER` seconds later (it may be upgraded).
- ``OBJSTORE_COMMIT_BATCH=0`` in a process's environment turns coalescing off there.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, Awaitable, Callable

from objstore.coalescing import Lanes, MissingRoutes, background_spawner
from objstore.errors import ObjstoreError, ServiceUnavailable

ENV = "OBJSTORE_COMMIT_BATCH"
ONE, MANY = "/v1/command", "/v1/commands"
MAX_BATCH = 256  # commands in one call (metadata.command_batch_http.MAX_COMMANDS)
MAX_WAITING = 4096  # commands waiting for the call in flight; more go alone
MAX_ITEM_BYTES = 64 << 10  # larger commands go alone: 256 of these stay below the service's 16 MiB
RESEND_ALONE = frozenset({"NotLeader", "ServiceUnavailable"})

# (path, JSON body, seconds) -> the JSON answer within those seconds; retries inside
Post = Callable[[str, bytes, float], Awaitable[Any]]


def enabled() -> bool:
    """Whether this process coalesces commands (``OBJSTORE_COMMIT_BATCH`` is not "0")."""
    return os.environ.get(ENV, "1") != "0"


class CommandBatcher:
    """``post`` sends one signed JSON body, retried across members until the seconds it is
    given are over (:meth:`MetadataClient._call`); ``timeout``: the client's deadline."""

    def __init__(self, post: Post, *, timeout: float, max_batch: int = MAX_BATCH,
                 max_waiting: int = MAX_WAITING, clock: Callable[[], float] = time.monotonic) -> None:
        self._post = post
        self._lanes: Lanes[None, bytes, dict[str, Any]] = Lanes(
            self._one, self._many, background_spawner(), max_batch=max_batch, max_waiting=max_waiting,
            timeout=timeout, clock=clock, describe=lambda _: "metadata command")
        self._missing: MissingRoutes[None] = MissingRoutes(clock)  # the service lacked the batch route

    @property
    def calls(self) -> int:
        """Calls made through the lane (commands sent / calls shows the coalescing)."""
        return self._lanes.calls

    async def send(self, command: dict[str, Any]) -> dict[str, Any]:
        """Commit ``command`` (wire form, with its session); its outcome ``{"value": ...}``
        or ``{"error": ...}``; raises what a failed call raised."""
        data = json.dumps(command, ensure_ascii=False).encode()
        if len(data) > MAX_ITEM_BYTES:
            return await self._one(None, data, self._lanes.timeout)
        return await self._lanes.submit(None, data)

    async def _one(self, _: None, data: bytes, seconds: float) -> dict[str, Any]:
        return await self._post(ONE, data, seconds)

    async def _many(self, _: None, items: list[bytes], seconds: float) -> list[dict[str, Any] | BaseException]:
        end = time.monotonic() + seconds
        if self._missing.single(None):
            return await self._each_alone(items, seconds)
        try:
            answer = await self._post(MANY, b'{"commands":[' + b",".join(items) + b"]}", seconds)
        except ObjstoreError as err:
            if not self._missing.note(None, err):
                raise
            return await self._each_alone_until(items, end)
        results: list[dict[str, Any]] = answer["results"]
        if len(results) != len(items):
            raise ObjstoreError(f"{len(results)} results for {len(items)} commands")
        resend = [i for i, r in enumerate(results) if (r.get("error") or {}).get("code") in RESEND_ALONE]
        out: list[dict[str, Any] | BaseException] = list(results)
        if resend:
            for i, r in zip(resend, await self._each_alone_until([items[i] for i in resend], end), strict=True):
                out[i] = r
        return out

    async def _each_alone_until(self, items: list[bytes], end: float) -> list[dict[str, Any] | BaseException]:
        """Each of ``items`` alone with what is left until ``end`` (monotonic); with nothing
        left, none is sent again: each fails as a single call whose deadline ran out."""
        left = end - time.monotonic()
        if left <= 0:
            return [ServiceUnavailable("no metadata leader answered within the deadline")] * len(items)
        return await self._each_alone(items, left)

    async def _each_alone(self, items: list[bytes], seconds: float) -> list[dict[str, Any] | BaseException]:
        return list(await asyncio.gather(*(self._one(None, d, seconds) for d in items), return_exceptions=True))

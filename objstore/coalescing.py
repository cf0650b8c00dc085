"""Calls coalesced while one is in flight: lanes of waiting items, each drained by one task.

An item that finds no call in flight on its lane goes at once, alone (``send_one``) — "at
once" being after ``gather_ticks`` iterations of the event loop, no timer: the items that
the same event makes a hop or two later (a batched metadata answer resumes many PUTs, each
of which then writes its manifests) join it — and those that come while one is in flight
wait for it and then go together in one call (``send_many``), at most ``max_batch`` per
call (and, given ``weight``, items weighing at most ``max_weight`` together, but always at
least one). Used for commit-manifest writes to a storage node
(:mod:`gateway.datapath.manifest_lanes`), small blob writes to a storage node
(:mod:`gateway.datapath.blob_lanes`) and metadata commands (:mod:`metadata.api.command_batch`).

Invariants: a caller is answered only once the call carrying its item answered, with that
call's answer for its item: ``send_many`` gives one result or exception per item (so one
item's error does not fail the others), and a call that raises fails every item it carried
with that error. Lanes are bounded: at most ``max_waiting`` items wait per lane (more go
alone, at once), and an idle lane holds nothing.

Time is bounded as for a single call: ``timeout`` is what one call of the lane's kind may
take (a single call is given that much), and an item is answered within ``timeout`` of
coming, whatever is ahead of it. Items wait only behind a call that is not stalled: once
the call in flight has run ``stall`` seconds (``stall < timeout``), the items waiting
behind it go in a call of their own at once, beside it, rather than wait for its answer or
its timeout (a peer that hangs, or a slow one still answering within ``timeout``). Each call
is given what is left of its oldest item's ``timeout`` (``send_one(lane, item, seconds)``,
``send_many(lane, items, seconds)``), and an item still unsent ``timeout`` seconds after it
came is failed unsent (ServiceUnavailable). So a lane keeps at most about ``timeout /
stall`` stalled calls in flight beside its current one.

The calls run in background tasks, so a caller that is cancelled does not cancel the call
that carries other callers' items; an item whose caller was cancelled before its call
started is not sent at all. With ``cancel_abandoned``, a call in flight whose callers were
all cancelled is cancelled too (as each caller's own call would have been), and the lane
goes on with the items behind it. If a drain task is itself cancelled (shutdown), its
callers are failed (ServiceUnavailable).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Coroutine, Generic, Hashable, Sequence, TypeVar

from objstore.errors import ObjstoreError, ServiceUnavailable

# Loop iterations an idle lane's first call waits before it goes, so that the items the
# same event makes (the PUTs one batched metadata answer resumes each write three
# manifests, a task and a hop or two later) go in that call rather than in a second one.
GATHER_TICKS = 2

K = TypeVar("K", bound=Hashable)  # a lane
T = TypeVar("T")  # an item
R = TypeVar("R")  # its result

SendOne = Callable[[K, T, float], Awaitable[R]]  # (lane, item, seconds the call may take)
SendMany = Callable[[K, list[T], float], Awaitable[Sequence["R | BaseException"]]]


def background_spawner() -> Callable[[Coroutine[Any, Any, Any]], None]:
    """A ``spawn`` that runs coroutines as tasks, holding them until they end."""
    tasks: set[asyncio.Task[Any]] = set()

    def spawn(coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return spawn


class _Drain:
    """A task serving a lane: when its call in flight started (None between calls), and
    the timer that hands the lane's waiting items to a new drain if that call stalls."""

    __slots__ = ("started", "timer", "task", "carried", "dropping")

    def __init__(self) -> None:
        self.started: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task | None = None
        self.carried: list[asyncio.Future] = []  # the callers' futures of the call in flight
        self.dropping = False  # the call in flight is being cancelled: its callers all went away

    def abandoned(self, fut: asyncio.Future) -> None:
        """A done callback of each caller of the call in flight: once all of them were
        cancelled, cancel the call (the drain's task, which goes on with the lane)."""
        if (fut.cancelled() and not self.dropping and self.task is not None and fut in self.carried
                and all(f.cancelled() for f in self.carried)):
            self.dropping = True
            self.task.cancel()


class Lanes(Generic[K, T, R]):
    """``spawn`` runs a coroutine in the background; ``clock`` tells the time waiting is
    measured by (monotonic seconds); ``describe(lane)`` names a lane's calls in errors;
    ``timeout`` and ``stall`` (default half the timeout): see the module docstring."""

    def __init__(self, send_one: SendOne[K, T, R], send_many: SendMany[K, T, R],
                 spawn: Callable[[Coroutine[Any, Any, Any]], None], *, max_batch: int, max_waiting: int,
                 timeout: float, stall: float | None = None, clock: Callable[[], float] = time.monotonic,
                 describe: Callable[[K], str] = str, gather_ticks: int = GATHER_TICKS,
                 weight: Callable[[T], int] | None = None, max_weight: int = 0,
                 cancel_abandoned: bool = False) -> None:
        self._send_one = send_one
        self._send_many = send_many
        self._spawn = spawn
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.timeout = timeout
        self.stall = timeout / 2 if stall is None else min(stall, timeout / 2)
        self._clock = clock
        self._describe = describe
        self.gather_ticks = gather_ticks
        self._weight = weight
        self.max_weight = max_weight
        self.cancel_abandoned = cancel_abandoned
        self._waiting: dict[K, list[tuple[T, asyncio.Future[R], float]]] = {}
        self._drains: dict[K, _Drain] = {}  # lanes being served -> the drain that takes their waiting items
        self.calls = 0  # calls made (items sent / calls shows the coalescing)
        self.stalls = 0  # calls that stalled with items waiting behind them (sent beside it instead)

    async def submit(self, lane: K, item: T) -> R:
        """Send ``item`` on ``lane``; its result, or raises what its call raised for it."""
        return await self.enqueue(lane, item)

    def enqueue(self, lane: K, item: T) -> "asyncio.Future[R]":
        """:meth:`submit` without a coroutine of its own: the future of ``item``'s result
        (cancelling it is cancelling the caller: an item not yet sent is not sent). A
        caller that waits for several items at once (a blob's replicas) needs no task per
        item to do so."""
        waiting = self._waiting.setdefault(lane, [])
        drain = self._drains.get(lane)
        if drain is not None and len(waiting) >= self.max_waiting:
            self.calls += 1
            return asyncio.ensure_future(self._send_one(lane, item, self.timeout))
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        now = self._clock()
        waiting.append((item, done, now))
        if drain is None:
            drain = self._drains[lane] = _Drain()
            self._spawn(self._drain(lane, drain))
        elif drain.started is not None and drain.timer is None:
            # The first item behind this call: if the call stalls, it and those after it go without it.
            drain.timer = asyncio.get_running_loop().call_later(
                max(drain.started + self.stall - now, 0.0), self._stalled, lane, drain)
        return done

    def _stalled(self, lane: K, drain: _Drain) -> None:
        """``drain``'s call has run ``stall`` seconds with items waiting behind it: a new
        drain takes them (and the lane) now; the old one ends once its call has answered."""
        drain.timer = None
        if self._drains.get(lane) is not drain or not self._waiting.get(lane):
            return
        self.stalls += 1
        fresh = self._drains[lane] = _Drain()
        self._spawn(self._drain(lane, fresh))

    async def _drain(self, lane: K, drain: _Drain) -> None:
        batch: list[tuple[T, asyncio.Future[R], float]] = []
        drain.task = asyncio.current_task()
        try:
            for _ in range(self.gather_ticks):  # let the rest of this burst join the first call
                await asyncio.sleep(0)
            while self._drains.get(lane) is drain and (waiting := self._waiting.get(lane)):
                self._drop_cancelled(waiting)
                now = self._clock()
                self._expire(lane, waiting, now)
                n = self._batch_length(waiting)
                batch, waiting[:] = waiting[:n], waiting[n:]
                if not batch:
                    continue
                self.calls += 1
                drain.started = now
                if waiting and drain.timer is None:
                    # Items left over (more than one call takes) wait behind this call only
                    # until it stalls, as those that come while it is in flight do.
                    drain.timer = asyncio.get_running_loop().call_later(self.stall, self._stalled, lane, drain)
                left = self.timeout - (now - batch[0][2])  # what is left of the oldest item's time
                results: Sequence[R | BaseException]
                if self.cancel_abandoned:
                    drain.carried = [done for _, done, _ in batch]
                    for done in drain.carried:
                        done.add_done_callback(drain.abandoned)
                try:
                    if len(batch) == 1:
                        results = [await self._send_one(lane, batch[0][0], left)]
                    else:
                        results = await self._send_many(lane, [item for item, _, _ in batch], left)
                except Exception as exc:  # noqa: BLE001 - handed to every caller whose item it carried
                    results = [exc] * len(batch)
                except asyncio.CancelledError:
                    # Cancelled for its callers, who all went away (see _Drain.abandoned): the
                    # lane goes on; any other cancellation (shutdown) ends the drain.
                    if not drain.dropping or drain.task is None or drain.task.uncancel() > 0:
                        raise
                    results = [asyncio.CancelledError()] * len(batch)  # every caller is done already
                finally:
                    drain.carried = []
                    drain.dropping = False
                drain.started = None
                if drain.timer is not None:
                    drain.timer.cancel()
                    drain.timer = None
                for (_, done, _), result in zip(batch, results, strict=True):
                    if not done.done():
                        if isinstance(result, BaseException):
                            done.set_exception(result)
                        else:
                            done.set_result(result)
        finally:
            if drain.timer is not None:
                drain.timer.cancel()
            owner = self._drains.get(lane) is drain
            if owner:
                del self._drains[lane]
            # Only when this task itself was cancelled (shutdown): the call in flight and
            # those waiting (if this drain still serves the lane) are abandoned, and their
            # callers are failed (rather than wait for an answer that will never come).
            abandoned = ServiceUnavailable(f"{self._describe(lane)} abandoned")
            for _, done, _ in batch + (self._waiting.pop(lane, []) if owner else []):
                if not done.done():
                    done.set_exception(abandoned)

    def _batch_length(self, waiting: list[tuple[T, asyncio.Future[R], float]]) -> int:
        """How many items at the head of ``waiting`` go in the next call."""
        n = min(len(waiting), self.max_batch)
        if self._weight is None or n <= 1:
            return n
        total = 0
        for i in range(n):
            total += self._weight(waiting[i][0])
            if total > self.max_weight:
                return max(i, 1)
        return n

    @staticmethod
    def _drop_cancelled(waiting: list[tuple[T, asyncio.Future[R], float]]) -> None:
        """Take out the items whose callers were cancelled before their call started
        (nobody waits for their answer: they are not sent)."""
        if any(done.done() for _, done, _ in waiting):
            waiting[:] = [w for w in waiting if not w[1].done()]

    def _expire(self, lane: K, waiting: list[tuple[T, asyncio.Future[R], float]], now: float) -> None:
        """Fail, without sending them, the items at the head of ``waiting`` that came more
        than ``timeout`` ago (they came in order, so those are a prefix)."""
        late = now - self.timeout
        n = 0
        while n < len(waiting) and waiting[n][2] <= late:
            n += 1
        if not n:
            return
        expired, waiting[:] = waiting[:n], waiting[n:]
        error = ServiceUnavailable(f"{self._describe(lane)} waited over {self.timeout:g}s for its call")
        for _, done, _ in expired:
            if not done.done():
                done.set_exception(error)


RETRY_ROUTE_AFTER = 60.0  # seconds of single calls to a peer that lacked a batch route


def route_missing(err: ObjstoreError) -> bool:
    """An answer of a service that has no such route (an aiohttp 404/405 page, not JSON)."""
    return err.code == "InternalError" and err.message.startswith(("HTTP 404", "HTTP 405"))


class MissingRoutes(Generic[K]):
    """Peers (by lane) that answered a batch call as a route they lack (an older version):
    each gets single calls until :data:`RETRY_ROUTE_AFTER` seconds later, then the batch
    route is tried again (it may have been upgraded). At most ``limit`` peers remembered."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, limit: int = 1024) -> None:
        self._clock = clock
        self._limit = limit
        self._until: dict[K, float] = {}

    def single(self, lane: K) -> bool:
        """Whether ``lane``'s peer gets single calls now."""
        until = self._until.get(lane)
        return until is not None and self._clock() < until

    def note(self, lane: K, err: ObjstoreError) -> bool:
        """Whether ``err`` says the route is missing; if so, single calls for ``lane`` from now."""
        if not route_missing(err):
            return False
        if len(self._until) >= self._limit:
            self._until.clear()
        self._until[lane] = self._clock() + RETRY_ROUTE_AFTER
        return True

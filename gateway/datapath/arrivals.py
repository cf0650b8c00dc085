"""Tasks taken in the order they finish, for the few parallel calls of every write.

``asyncio.wait(..., return_when=FIRST_COMPLETED)`` adds and removes a callback on every
pending task and makes a future per call; ``asyncio.as_completed`` builds a queue and a
coroutine per task. A small PUT waited that way for its three blob uploads and its three
manifest writes. :class:`Arrivals` puts one callback on each task once, for good, and a
waiter wakes when one of them finishes: the same order, with a fraction of the work.

Invariants: :meth:`next` returns each finished task exactly once, in finishing order (a
task that finished in the same loop step as a timeout, its callback not yet run, is
returned then too, as ``asyncio.wait`` would); it returns ``[]`` only when its timeout
passed with none finished; :meth:`close` removes the callbacks (tasks still running then
are no longer watched).
"""
from __future__ import annotations

import asyncio
from typing import Iterable


class Arrivals:
    """Watches ``tasks`` (more may be added); :meth:`next` hands out those that finished."""

    def __init__(self, tasks: Iterable[asyncio.Future]) -> None:
        self._watched: list[asyncio.Future] = []
        self._finished: list[asyncio.Future] = []
        self._handed: set[asyncio.Future] = set()
        self._waiter: asyncio.Future[None] | None = None
        for task in tasks:
            self.add(task)

    def add(self, task: asyncio.Future) -> None:
        self._watched.append(task)
        task.add_done_callback(self._arrived)

    def _arrived(self, task: asyncio.Future) -> None:
        if task not in self._handed:
            self._finished.append(task)
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self, timeout: float | None = None) -> list[asyncio.Future]:
        """The tasks that finished since the last call, waiting for one if none has (at
        most ``timeout`` seconds: then ``[]``)."""
        if not self._finished:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = None if timeout is None else loop.call_later(timeout, self._wake)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        finished, self._finished = self._finished, []
        if not finished:  # timed out: a task may have ended with its callback still queued
            finished = [t for t in self._watched if t.done() and t not in self._handed]
        self._handed.update(finished)
        return finished

    def close(self) -> None:
        for task in self._watched:
            task.remove_done_callback(self._arrived)
        self._watched = []

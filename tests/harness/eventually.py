"""Waiting for a condition with a deadline: the one way tests wait.

``eventually(predicate)`` calls ``predicate()`` until it returns something truthy and
returns that value. If the deadline passes first it raises AssertionError naming what was
awaited, the timeout and the last value seen. Exceptions raised by the predicate are not
caught: a predicate may ``assert`` things that must hold on every try (a process still
alive, an error of the expected kind), and such a failure ends the wait at once.

The predicate is always tried at least once, and once more at or after the deadline, so a
timeout of 0 means "check now". ``eventually_async`` is the same for a running event loop:
its predicate may be a plain function or return an awaitable, and it sleeps with
``asyncio.sleep`` so the servers on the same loop keep running.
"""
from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Awaitable, Callable, TypeVar, Union

T = TypeVar("T")
Message = Union[str, Callable[[], Any], None]


def _timed_out(predicate: Callable[..., Any], timeout: float, last: object, what: object) -> AssertionError:
    if what is None:
        what = f"{getattr(predicate, '__qualname__', repr(predicate))}() to hold"
    return AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def eventually(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
               message: Message = None) -> T:
    """Call ``predicate()`` every ``interval`` seconds until it is truthy; return its value.

    Raises AssertionError after ``timeout`` seconds, saying what was awaited: ``message``,
    or what ``message()`` returns when it is a function (called only on timeout, so it may
    describe the state at that moment), or else the predicate's name."""
    deadline = time.monotonic() + timeout
    while True:
        last_try = time.monotonic() >= deadline
        value = predicate()
        if value:
            return value
        if last_try:
            raise _timed_out(predicate, timeout, value, message() if callable(message) else message)
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


async def eventually_async(predicate: Callable[[], Union[T, Awaitable[T]]], timeout: float = 10.0,
                           interval: float = 0.05, message: Message = None) -> T:
    """:func:`eventually` inside an event loop; ``predicate`` (and a callable ``message``) may
    be sync or async."""
    deadline = time.monotonic() + timeout
    while True:
        last_try = time.monotonic() >= deadline
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if last_try:
            what = message() if callable(message) else message
            if inspect.isawaitable(what):
                what = await what
            raise _timed_out(predicate, timeout, value, what)
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))

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


def _describe(predicate: Callable[..., Any], message: Message) -> str:
    if isinstance(message, str):
        return message
    name = getattr(predicate, "__qualname__", repr(predicate))
    return f"{name}() to hold"


def _timed_out(what: str, timeout: float, last: object, detail: object = None) -> AssertionError:
    text = f"timed out after {timeout}s waiting for {what} (last value: {last!r})"
    if detail is not None:
        text += f"\n{detail}"
    return AssertionError(text)


def eventually(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
               message: Message = None) -> T:
    """Call ``predicate()`` every ``interval`` seconds until it is truthy; return its value.

    Raises AssertionError after ``timeout`` seconds. ``message`` says what is awaited: a
    string, or a function called on timeout whose result is added to the failure."""
    deadline = time.monotonic() + timeout
    while True:
        last_try = time.monotonic() >= deadline
        value = predicate()
        if value:
            return value
        if last_try:
            detail = message() if callable(message) else None
            raise _timed_out(_describe(predicate, message), timeout, value, detail)
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
            detail = message() if callable(message) else None
            if inspect.isawaitable(detail):
                detail = await detail
            raise _timed_out(_describe(predicate, message), timeout, value, detail)
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))

"""A ``spawn`` callable for code under test that starts background work (lanes, batchers):
each coroutine becomes a task, held until it ends so it is not collected while running."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine


def spawner() -> Callable[[Coroutine[Any, Any, Any]], None]:
    tasks: set[asyncio.Task] = set()

    def spawn(coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return spawn

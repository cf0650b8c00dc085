"""A TCP relay in front of a server, so a test can slow or cut the traffic to it.

``Link(target)`` listens on its own 127.0.0.1 port and relays every connection to
``target()`` ("host:port", asked at each connection, so the server behind may move).
Switches:

- ``delay``: seconds to wait before relaying each chunk (up to ``CHUNK`` bytes), in both
  directions: a slow node or a slow network.
- ``stall()``: relay nothing more, in either direction, on any connection (new ones are
  accepted and then hang too), as when the process behind is paused (SIGSTOP);
  ``resume()`` lets the held bytes through again (SIGCONT).
- ``cut()``: abort every relayed connection (both sides see a reset) and stop listening
  (new connections are refused), as when the process behind dies; ``start()`` listens on
  the same port again.

Invariant: bytes are relayed in order and unchanged; a relayed connection ends on both
sides when either side ends.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Callable

CHUNK = 64 * 1024


class Link:
    def __init__(self, target: Callable[[], str], host: str = "127.0.0.1") -> None:
        self._target = target
        self.host = host
        self.port = 0
        self.delay = 0.0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._tasks: set[asyncio.Task] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (on the port used before, if any); a stalled link flows again."""
        self._flowing.set()
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def stall(self) -> None:
        """Hold every byte from now on (see the module docstring)."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for t in list(self._transports):
            t.abort()
        self._transports.clear()

    async def close(self) -> None:
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._transports.add(down_w.transport)
        try:
            host, port = self._target().rsplit(":", 1)
            try:
                up_r, up_w = await asyncio.open_connection(host, int(port))
            except OSError:
                down_w.transport.abort()
                return
            self._transports.add(up_w.transport)
            try:
                await asyncio.gather(self._pipe(down_r, up_w), self._pipe(up_r, down_w))
            finally:
                self._transports.discard(up_w.transport)
                up_w.transport.abort()
        finally:
            self._transports.discard(down_w.transport)
            down_w.transport.abort()
            self._tasks.discard(task)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Relay until ``src`` ends, then end ``dst`` (abort it if ``src`` failed)."""
        try:
            while True:
                data = await src.read(CHUNK)
                await self._flowing.wait()
                if not data:
                    break
                if self.delay:
                    await asyncio.sleep(self.delay)
                dst.write(data)
                await dst.drain()
            with contextlib.suppress(OSError):
                if dst.can_write_eof():
                    dst.write_eof()
        except (OSError, asyncio.IncompleteReadError):
            dst.transport.abort()

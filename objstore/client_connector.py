"""An aiohttp connector whose kept-alive connections are not poisoned by a stale read timer.

With ``ClientTimeout(sock_read=...)``, aiohttp (3.14) arms a read timer on a connection it
has already put back in its keep-alive pool. The path: a body arrives faster than it is
read, so the response's buffer passes its high-water mark and reading pauses with the last
body bytes still inside the parser. When the reader drains the buffer,
``ResponseHandler.resume_reading()`` first resumes the parser, which finishes the message:
the body's end-of-stream callbacks cancel the read timer and release the connection to the
pool. Then, since reading *was* paused, ``resume_reading()`` re-arms the timer. Nothing
cancels it on the idle connection; ``sock_read`` seconds later it stamps a
``SocketTimeoutError`` on the connection, and the pool hands that connection to a later
request, which fails at once with it (the pool checks only that the socket is open).

:class:`_ResponseHandler` drops a timer that a resume re-armed after it completed the
response. :func:`keepalive_connector` builds a ``TCPConnector`` whose connections use it.
"""
from __future__ import annotations

import functools
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler


class _ResponseHandler(ResponseHandler):
    def resume_reading(self, resume_parser: bool = True) -> None:
        payload = self._payload
        open_before = payload is not None and not payload.is_eof()
        super().resume_reading(resume_parser)
        if open_before and payload.is_eof():
            # This resume finished the response (and released the connection): no read is in
            # flight, so a timer armed now could only fire on the idle connection.
            self._drop_timeout()


def keepalive_connector(**kwargs: Any) -> aiohttp.TCPConnector:
    """``aiohttp.TCPConnector(**kwargs)`` whose connections keep no read timer once idle.

    Call it inside a running event loop (as ``TCPConnector`` itself requires)."""
    connector = aiohttp.TCPConnector(**kwargs)
    factory = getattr(connector, "_factory", None)
    if not isinstance(factory, functools.partial) or factory.func is not ResponseHandler:
        raise RuntimeError(f"aiohttp {aiohttp.__version__}: the connector's protocol factory is not the one "
                           "objstore.client_connector replaces; check the read-timer fix against this version")
    connector._factory = functools.partial(_ResponseHandler, *factory.args, **factory.keywords)
    return connector

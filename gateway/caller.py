"""What the middleware learns about a request before its handler runs, stored on the request
under typed keys: who the caller is (:class:`Caller`) and the request's id."""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.auth.sigv4 import AuthContext


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller: the owner id its credential acts for, and how the request
    was signed (what the body must be checked against)."""

    owner: str
    auth: AuthContext


CALLER_KEY: web.RequestKey[Caller] = web.RequestKey("caller", Caller)
REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("request_id", str)

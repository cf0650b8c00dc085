"""Commands proposed together: ``POST /v1/commands`` on a metadata node.

    POST /v1/commands   {"commands": [command, ...]}  -> {"results": [{"value": v} | {"error": e}, ...]}

Each command is a normal command (:mod:`metadata.api.commands`) with its own session (client
id, sequence number), so one retried, alone or in another batch, is applied once. All are
proposed at once, so they land in one Raft batch (one log write, one replication round),
and the HTTP serve cost (parse, auth, JSON, answer) is paid once for the lot. The results
come in the commands' order: each the command's outcome or its error (a command that fails,
e.g. PreconditionFailed, fails alone). A node that does not lead answers NotLeader for the
whole call, as for one command; losing leadership midway gives NotLeader (or
ServiceUnavailable) as the result of the commands it hit, which the client resends alone.
Bounded: at most :data:`MAX_COMMANDS` commands and :data:`MAX_BODY` bytes per call.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, Callable

from aiohttp import web

from metadata import gc_http
from metadata.api import commands as c
from metadata.api.commands import command_from_dict
from metadata.replication.replicator import Replicator
from objstore.config import MetadataConfig
from objstore.errors import EntityTooLarge, InvalidArgument, ObjstoreError

MAX_COMMANDS = 256  # commands in one call
MAX_BODY = 16 << 20  # bytes of one call's body (the client sends larger commands alone)
PATH = "/v1/commands"


def prepare(cmd: c.Command, cfg: MetadataConfig, now: float) -> c.Command:
    """``cmd`` as the node proposes it: a bucket created without a policy gets the
    default one; commands that commit new blobs get their commit-age floor."""
    if isinstance(cmd, c.CreateBucket) and not cmd.policy:
        cmd = dataclasses.replace(cmd, policy=cfg.default_policy)
    return gc_http.stamp(cmd, cfg.gc_grace, now)


def _commands(body: Any) -> list[Any]:
    items = body.get("commands") if isinstance(body, dict) else None
    if not isinstance(items, list) or not 0 < len(items) <= MAX_COMMANDS:
        raise InvalidArgument(f'expected {{"commands": [command, ...]}}, 1 to {MAX_COMMANDS} of them')
    return items


async def _outcome(rep: Replicator, cmd: c.Command | ObjstoreError) -> dict[str, Any]:
    if isinstance(cmd, ObjstoreError):
        return {"error": cmd.to_dict()}
    try:
        return (await rep.propose(cmd)).to_dict()
    except ObjstoreError as err:
        return {"error": err.to_dict()}


def add_routes(app: web.Application, rep_of: Callable[[web.Request], Replicator],
               cfg_of: Callable[[web.Request], MetadataConfig]) -> None:
    async def post_commands(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise EntityTooLarge(f"a command batch takes at most {MAX_BODY} bytes")
        try:
            body = await request.json()
        except ValueError as exc:
            raise InvalidArgument(f"request body is not JSON: {exc}") from None
        items = _commands(body)
        rep, cfg, now = rep_of(request), cfg_of(request), time.time()
        if not rep.is_leader():
            raise rep.not_leader()
        cmds: list[c.Command | ObjstoreError] = []
        for item in items:
            try:
                cmds.append(prepare(command_from_dict(item), cfg, now))
            except ObjstoreError as err:
                cmds.append(err)
        # The proposals start in order, each appended before any waits, so one Raft batch.
        propose_all = getattr(rep, "propose_all", None)
        if propose_all is not None:  # the same, without a task per command
            results = [o.to_dict() if isinstance(o, c.Outcome) else {"error": o.to_dict()}
                       for o in await propose_all(cmds)]
        else:
            results = await asyncio.gather(*(_outcome(rep, cmd) for cmd in cmds))
        return web.json_response({"results": results})

    app.router.add_post(PATH, post_commands, name="commands")

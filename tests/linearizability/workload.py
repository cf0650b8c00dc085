"""A random register workload on the metadata service's object index, recorded for the checker.

Each client is one asyncio task with its own :class:`~metadata.api.client.MetadataClient` (its
own client id, hence its own command session) and runs one operation at a time, so every
operation's ``call`` and ``ret`` bracket the whole request, retries included. Operations on
``(bucket, key)``, as the register model (:mod:`tests.linearizability.model`) names them:

- ``put``: PutObject of a version whose ETag is the written value;
- ``get``: ``get_object`` (a strong read: ReadIndex at the leader); NoSuchKey reads ``None``;
- ``delete``: DeleteObject in an unversioned bucket (the key becomes absent);
- ``cas``: PutObject with ``if_match=<ETag>`` or ``if_none_match=True``; PreconditionFailed,
  and NoSuchKey for If-Match on an absent key, are the definite result ``PRECONDITION_FAILED``.

Invariants: every write writes a value no other write writes (``c<client>.<n>``), and a
value is its own ETag, so histories use the register model with the identity ``etag_of``.
Outcomes are classified by :func:`classify`: a 503 (NotLeader, ServiceUnavailable, the
client's own deadline), a 5xx, a timeout or a connection error is unknown; any other error
is a bug in the test or the service and propagates (the op is recorded as unknown first).
Randomness comes only from the ``random.Random`` each client is given.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import aiohttp

from metadata.api.client import MetadataClient, path_with_query
from metadata.api.results import ObjectLookup
from objstore import internal_auth
from objstore.errors import NoSuchKey, ObjstoreError, PreconditionFailed, raise_for_error_body
from objstore.types import ObjectVersion
from tests.linearizability.history import (
    CAS_OK, PRECONDITION_FAILED, Op, Outcome, Recorder, default_classify, failed, returned,
)

STALE_READ_HEADER = "X-Objstore-Debug-Stale-Read"
# Relative weights of the operations a client picks.
DEFAULT_MIX: tuple[tuple[str, int], ...] = (("get", 40), ("put", 25), ("cas", 20), ("delete", 15))


def classify(kind: str, exc: BaseException) -> Outcome | None:
    """The history outcome of a metadata-service exception (module docstring)."""
    if kind == "cas" and isinstance(exc, (PreconditionFailed, NoSuchKey)):
        return failed(PRECONDITION_FAILED)
    if kind == "get" and isinstance(exc, NoSuchKey):
        return returned(None)
    if isinstance(exc, ObjstoreError) and exc.status < 500:
        return None  # an answer none of these operations should get: let it fail the test
    return default_classify(kind, exc)


def version(bucket: str, key: str, value: str) -> ObjectVersion:
    """The version record a write of ``value`` commits: ``value`` is its id and its ETag."""
    return ObjectVersion(bucket, key, value, len(value), value, time.time(), placement=("n1",), ring_epoch=1,
                         owner="lin")


class Register(Protocol):
    """One client's view of the keys of one bucket."""

    async def put(self, key: str, value: str) -> None: ...
    async def get(self, key: str) -> str | None: ...
    async def delete(self, key: str) -> None: ...
    async def cas(self, key: str, expected: str | None, value: str) -> str: ...


class ClientRegister:
    """The register operations through a :class:`MetadataClient` (leader, ReadIndex)."""

    def __init__(self, client: MetadataClient, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    async def put(self, key: str, value: str) -> None:
        await self.client.put_object(version(self.bucket, key, value))

    async def get(self, key: str) -> str | None:
        """Raises NoSuchKey when absent (the recorder reads that as ``None``)."""
        return (await self.client.get_object(self.bucket, key)).etag

    async def delete(self, key: str) -> None:
        await self.client.delete_object(self.bucket, key)

    async def cas(self, key: str, expected: str | None, value: str) -> str:
        """Raises PreconditionFailed (or NoSuchKey: If-Match on an absent key)."""
        v = version(self.bucket, key, value)
        if expected is None:
            await self.client.put_object(v, if_none_match=True)
        else:
            await self.client.put_object(v, if_match=expected)
        return CAS_OK


async def stale_get(session: aiohttp.ClientSession, address: str, secret: str, bucket: str, key: str,
                    timeout: float = 2.0) -> str | None:
    """GET /v1/object from the node at ``address`` alone, with the stale-read switch on: the
    node answers from its local state without ReadIndex (only with fault injection). Returns
    the current ETag or None; raises the objstore error of the answer."""
    path_qs = path_with_query("/v1/object", {"bucket": bucket, "key": key})
    headers = internal_auth.headers(secret, "GET", path_qs, target=address, extra={STALE_READ_HEADER: "1"})
    async with session.get(f"http://{address}{path_qs}", headers=headers,
                           timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        status, raw = resp.status, await resp.read()
    try:
        raise_for_error_body(status, raw)
    except NoSuchKey:
        return None
    return ObjectLookup.from_dict(json.loads(raw)).version.etag


@dataclass
class ClientState:
    """What one client believes about each key (the last value it saw or wrote, for cas)."""

    number: int
    rng: random.Random
    known: dict[str, str | None] = field(default_factory=dict)
    written: int = 0

    def fresh_value(self) -> str:
        self.written += 1
        return f"c{self.number}.{self.written}"


def choose(state: ClientState, keys: Sequence[str],
           mix: Sequence[tuple[str, int]] = DEFAULT_MIX) -> tuple[str, str, Any]:
    """The next operation ``(kind, key, input)`` of a client: pure given its RNG and state.
    A cas expects the value the client last saw on that key (absent: create-only)."""
    kinds, weights = zip(*mix)
    kind = state.rng.choices(kinds, weights)[0]
    key = state.rng.choice(list(keys))
    if kind == "put":
        return kind, key, state.fresh_value()
    if kind == "cas":
        return kind, key, (state.known.get(key), state.fresh_value())
    return kind, key, None


async def perform(recorder: Recorder, reg: Register, state: ClientState, kind: str, key: str, inp: Any) -> None:
    """Run one operation through ``reg`` and record it (outcome classified by the recorder)."""
    with recorder.op(state.number, kind, key, inp) as op:
        if kind == "get":
            op.output = await reg.get(key)
            state.known[key] = op.output
        elif kind == "put":
            await reg.put(key, inp)
            state.known[key] = inp
        elif kind == "delete":
            await reg.delete(key)
            state.known[key] = None
        elif kind == "cas":
            op.output = await reg.cas(key, inp[0], inp[1])
            state.known[key] = inp[1]
        else:
            raise ValueError(f"unknown operation {kind!r}")
    if op.ok is None:
        state.known.pop(key, None)  # no idea what is there now
    elif op.ok is False and kind == "cas":
        state.known.pop(key, None)  # its expectation was wrong


async def run_client(recorder: Recorder, reg: Register, state: ClientState, keys: Sequence[str],
                     stop: asyncio.Event, pause: float = 0.0) -> None:
    """Random operations until ``stop`` is set; ``pause`` seconds at most between two."""
    while not stop.is_set():
        kind, key, inp = choose(state, keys)
        await perform(recorder, reg, state, kind, key, inp)
        if pause:
            await asyncio.sleep(state.rng.uniform(0, pause))


@dataclass(frozen=True)
class Tally:
    """What a history holds, to show a run did something."""

    ok: int
    failed: int
    unknown: int
    reads_of_values: int
    writes_ok: int
    cas_ok: int
    cas_failed: int

    @classmethod
    def of(cls, ops: Sequence[Op]) -> "Tally":
        return cls(
            ok=sum(o.ok is True for o in ops), failed=sum(o.ok is False for o in ops),
            unknown=sum(o.ok is None for o in ops),
            reads_of_values=sum(o.kind == "get" and o.ok is True and o.output is not None for o in ops),
            writes_ok=sum(o.kind in ("put", "delete") and o.ok is True for o in ops),
            cas_ok=sum(o.kind == "cas" and o.ok is True for o in ops),
            cas_failed=sum(o.kind == "cas" and o.ok is False for o in ops),
        )

    def describe(self) -> str:
        return (f"{self.ok} ok, {self.failed} failed, {self.unknown} unknown; {self.reads_of_values} reads of a "
                f"value, {self.writes_ok} puts/deletes, {self.cas_ok} cas applied, {self.cas_failed} cas refused")

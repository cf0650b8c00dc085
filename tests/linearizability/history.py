"""Operation histories: the record of one client operation, a recorder, and JSON files.

A history is a list of :class:`Op`, one per client request, each with the time it was
called and the time it returned, read from one monotonic clock shared by every client.

How an outcome is recorded (the rules the checker relies on):

- ``ok=True``: the operation completed and ``output`` is its result (for a read of an absent
  key that result is ``None``). It must be linearized between ``call`` and ``ret``.
- ``ok=False``: the operation completed with a *definite failure that is a result*, e.g.
  ``PreconditionFailed`` for a conditional put (output ``PRECONDITION_FAILED``). It is a
  completed operation like any other: it must be linearized between ``call`` and ``ret``,
  and the model decides whether that output was possible at that point (a failed
  conditional put asserts the precondition did not hold). For operations whose failure
  says nothing about the state, the model treats it as a no-op.
- ``ok=None``: the outcome is *unknown* (timeout, connection reset, 503 after the request
  may have been proposed). The operation may have taken effect at any single point after
  ``call``, or never; its output was not observed. ``ret`` is recorded for debugging only:
  the checker treats it as +infinity. A pending read constrains nothing and is dropped.
- Dropped (not recorded at all): a request refused *before it could apply*, with a
  guarantee that it had no effect (e.g. a 400 for a malformed request, or a refusal the
  server documents as "never proposed"). Dropping a request that did apply can make a
  correct system look broken, so when in doubt classify it as unknown: unknown is always
  sound, it only weakens the check. Note that the Raft metadata service answers
  ``NotLeader`` both before proposing and when leadership is lost while a proposed command
  waits (it may or may not apply), so ``NotLeader`` is unknown, not dropped.

The :class:`Recorder` takes ``call`` when the ``with`` block opens and ``ret`` when it
closes; an exception leaving the block is classified by a callback
(:func:`default_classify`) into one of the outcomes above and suppressed, or, if it is no
outcome of the request (a bug in the test, cancellation), recorded as unknown and
re-raised. Operations still open when :meth:`Recorder.history` is called are
reported as unknown. Values must be hashable and JSON-representable (tuples round-trip).
"""
from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import aiohttp

from objstore.errors import NoSuchKey, ObjstoreError, PreconditionFailed

FORMAT = "objstore-history"
VERSION = 1
# The outputs of a conditional put: applied, or its precondition did not hold.
CAS_OK = "ok"
PRECONDITION_FAILED = "precondition_failed"


@dataclass(frozen=True, slots=True)
class Op:
    """One client operation: ``ok`` True (result), False (failure result), None (unknown)."""

    client: int
    kind: str
    key: str
    input: Any
    output: Any
    call: float
    ret: float | None
    ok: bool | None

    @property
    def pending(self) -> bool:
        return self.ok is None

    def describe(self) -> str:
        status = {True: "", False: " (failed)", None: " (unknown outcome)"}[self.ok]
        arg = "" if self.input is None else repr(self.input)
        out = "" if self.ok is None else f" -> {self.output!r}"
        end = "?" if self.ok is None or self.ret is None else f"{self.ret:.6f}"
        return f"c{self.client} {self.kind}({arg}){out}{status} [{self.call:.6f}, {end}] key={self.key!r}"


# --- classifying exceptions -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outcome:
    """What an exception means for the history: ``returned``, ``failed``, ``unknown`` or ``no_effect``."""

    verdict: str
    output: Any = None


UNKNOWN = Outcome("unknown")
NO_EFFECT = Outcome("no_effect")


def returned(output: Any) -> Outcome:
    """The exception is an ordinary result (e.g. NoSuchKey for a read is ``None``)."""
    return Outcome("returned", output)


def failed(output: Any) -> Outcome:
    """The exception is a definite failure result (e.g. PreconditionFailed)."""
    return Outcome("failed", output)


# Returns None for an exception that is not an outcome of the request (a bug in the test):
# the recorder then records the op as unknown and lets the exception propagate.
Classifier = Callable[[str, BaseException], "Outcome | None"]


def default_classify(kind: str, exc: BaseException) -> Outcome | None:
    """For objstore errors and network failures: NoSuchKey on a read is the result ``None``;
    PreconditionFailed is a failure result; any other objstore error (5xx, NotLeader, ...),
    a timeout or a connection error is unknown. Anything else is not an outcome (None)."""
    if isinstance(exc, NoSuchKey) and kind == "get":
        return returned(None)
    if isinstance(exc, PreconditionFailed):
        return failed(PRECONDITION_FAILED)
    if isinstance(exc, (ObjstoreError, TimeoutError, asyncio.TimeoutError, OSError, aiohttp.ClientError)):
        return UNKNOWN
    return None


# --- recording --------------------------------------------------------------------------------
class OpHandle:
    """The open operation inside ``with recorder.op(...)``: set ``output`` (and optionally
    call :meth:`fail`, :meth:`unknown` or :meth:`drop`) before the block closes."""

    __slots__ = ("client", "kind", "key", "input", "output", "call", "ok", "dropped")

    def __init__(self, client: int, kind: str, key: str, input: Any, call: float) -> None:
        self.client, self.kind, self.key, self.input, self.call = client, kind, key, input, call
        self.output: Any = None
        self.ok: bool | None = True
        self.dropped = False

    def fail(self, output: Any) -> None:
        """Record a definite failure result (completed, no success)."""
        self.ok, self.output = False, output

    def unknown(self) -> None:
        """Record that the outcome is unknown (may or may not have taken effect)."""
        self.ok, self.output = None, None

    def drop(self) -> None:
        """Leave the operation out: it was refused with a guarantee of no effect."""
        self.dropped = True

    def freeze(self, ret: float | None) -> Op:
        return Op(self.client, self.kind, self.key, self.input, self.output if self.ok is not None else None,
                  self.call, ret, self.ok)


class _OpContext:
    __slots__ = ("_recorder", "_handle")

    def __init__(self, recorder: "Recorder", handle: OpHandle) -> None:
        self._recorder, self._handle = recorder, handle

    def __enter__(self) -> OpHandle:
        return self._handle

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> bool:
        return self._recorder._close(self._handle, exc)


class Recorder:
    """Collects the operations of concurrent clients (asyncio tasks) with one monotonic clock.

    ``with recorder.op(client, "get", key) as op: op.output = await client.get(key)``.
    An exception leaving the block is classified (see :func:`default_classify`); an outcome
    is recorded and the exception suppressed, so a client loop goes on. An exception that is
    no outcome (a bug in the test, task cancellation) is recorded as unknown and propagates.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, classify: Classifier = default_classify) -> None:
        self.clock = clock
        self.classify = classify
        self._ops: list[Op] = []
        self._open: dict[int, OpHandle] = {}

    def op(self, client: int, kind: str, key: str, input: Any = None) -> _OpContext:
        handle = OpHandle(client, kind, key, input, self.clock())
        self._open[id(handle)] = handle
        return _OpContext(self, handle)

    def _close(self, handle: OpHandle, exc: BaseException | None) -> bool:
        ret = self.clock()
        self._open.pop(id(handle), None)
        suppress = False
        if exc is not None:
            outcome = self.classify(handle.kind, exc) if isinstance(exc, Exception) else None
            suppress = outcome is not None
            if outcome is None:
                outcome = UNKNOWN
            if outcome.verdict == "returned":
                handle.ok, handle.output = True, outcome.output
            elif outcome.verdict == "failed":
                handle.fail(outcome.output)
            elif outcome.verdict == "no_effect":
                handle.drop()
            else:
                handle.unknown()
        if not handle.dropped:
            self._ops.append(handle.freeze(ret))
        return suppress

    def history(self) -> list[Op]:
        """Every recorded operation ordered by call time; still-open ones as unknown."""
        ops = self._ops + [Op(h.client, h.kind, h.key, h.input, None, h.call, None, None)
                           for h in self._open.values()]
        return sorted(ops, key=lambda o: o.call)

    def __len__(self) -> int:
        return len(self._ops) + len(self._open)


# --- JSON files -------------------------------------------------------------------------------
def _tuples(value: Any) -> Any:
    """JSON arrays come back as tuples so that values stay hashable."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def op_to_dict(op: Op) -> dict[str, Any]:
    return {"client": op.client, "kind": op.kind, "key": op.key, "input": op.input, "output": op.output,
            "call": op.call, "ret": op.ret, "ok": op.ok}


def op_from_dict(d: dict[str, Any]) -> Op:
    return Op(int(d["client"]), str(d["kind"]), str(d["key"]), _tuples(d.get("input")), _tuples(d.get("output")),
              float(d["call"]), None if d.get("ret") is None else float(d["ret"]), d.get("ok"))


def dumps_history(ops: Iterable[Op], note: str | None = None) -> str:
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "ops": [op_to_dict(o) for o in ops]}
    if note:
        doc["note"] = note
    return json.dumps(doc, indent=0, allow_nan=False)


def loads_history(text: str) -> list[Op]:
    """Raises ValueError for a document that is not a version-1 history."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ValueError("not an objstore history (version 1)")
    return [op_from_dict(d) for d in doc["ops"]]


def dump_history(ops: Iterable[Op], path: Path | str, note: str | None = None) -> Path:
    path = Path(path)
    path.write_text(dumps_history(ops, note), encoding="utf-8")
    return path


def load_history(path: Path | str) -> list[Op]:
    return loads_history(Path(path).read_text(encoding="utf-8"))


def save_failing_history(ops: Iterable[Op], note: str, directory: Path | str | None = None) -> Path:
    """Write ``ops`` with ``note`` to a new file (under ``$OBJSTORE_HISTORY_DIR`` or the temp
    dir), print its path, and return it."""
    base = Path(directory or os.environ.get("OBJSTORE_HISTORY_DIR") or Path(tempfile.gettempdir()) / "objstore-histories")
    base.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="history-", suffix=".json", dir=base)
    os.close(fd)
    path = dump_history(ops, name, note)
    print(f"non-linearizable history written to {path}")
    return path


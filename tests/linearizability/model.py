"""Sequential specifications: the register (one key of the metadata object index).

The state of a key is its current value, ``None`` when absent (or
:data:`UNOBSERVABLE`, a search-only stand-in for "a value no remaining op observes").
Operations (``Op.kind``):

- ``put``    input ``value``; output ignored. The key now holds ``value``.
- ``get``    input ``None``; output the value read, ``None`` for absent.
- ``delete`` input ``None``; output ignored. The key is now absent (deleting an absent key
  succeeds, as S3 DELETE does).
- ``cas``    input ``(expected, new_value)``: the conditional put. ``expected`` is an ETag
  (``put_object(..., if_match=etag)``: applies only if the current value's ETag equals it)
  or ``None`` (``if_none_match=True``: create only, applies only if the key is absent).
  Output ``CAS_OK`` (applied; ``ok=True``) or ``PRECONDITION_FAILED`` (not applied;
  recorded with ``ok=False``). The ETag of a value is ``etag_of(value)``, the identity by
  default, so histories may record ETags as the values.

Pending ops (``ok=None``) may apply or not: a pending put/delete/cas applies its effect (a
cas only if its precondition holds at that point); "never" is the checker leaving it
unlinearized. A failed (``ok=False``) put, get or delete is a no-op, dropped before the
search. Values must be hashable; the search reductions (:mod:`.register_analysis`) assume
nothing else, but are most effective when every write writes a distinct value.
"""
from __future__ import annotations

from typing import Any, Callable

from tests.linearizability.history import CAS_OK, PRECONDITION_FAILED, Op
from tests.linearizability.register_analysis import UNOBSERVABLE, analyze_register
from tests.linearizability.spec import Analysis, Model, State, Step

__all__ = ["CAS_OK", "PRECONDITION_FAILED", "REGISTER", "UNOBSERVABLE", "Analysis", "Model",
           "register_model", "register_step"]


def _identity(value: Any) -> Any:
    return value


def register_step(state: State, op: Op, etag_of: Callable[[Any], Any] = _identity) -> tuple[bool, State]:
    """The register step; raises ValueError for an unknown kind or cas output."""
    kind, ok = op.kind, op.ok
    if kind == "get":
        if ok is not True:
            return True, state
        return op.output == state, state
    if kind == "put":
        return True, (state if ok is False else op.input)
    if kind == "delete":
        return True, (state if ok is False else None)
    if kind == "cas":
        expected, new_value = op.input
        if expected is None:
            holds = state is None
        else:
            holds = state is not None and state is not UNOBSERVABLE and etag_of(state) == expected
        if ok is None:
            return True, (new_value if holds else state)
        if op.output == CAS_OK:
            return holds, (new_value if holds else state)
        if op.output == PRECONDITION_FAILED:
            return not holds, state
        raise ValueError(f"cas output must be {CAS_OK!r} or {PRECONDITION_FAILED!r}, not {op.output!r}")
    raise ValueError(f"register model has no operation {kind!r}")


def _droppable(op: Op) -> bool:
    # A read whose result was not observed, or a failed write that was not a cas, says
    # nothing and changes nothing.
    if op.kind == "get":
        return op.ok is not True
    return op.ok is False and op.kind != "cas"


def _read_only(op: Op) -> bool:
    return op.kind == "get" or (op.kind == "cas" and op.ok is not None and op.output == PRECONDITION_FAILED)


def _validate(op: Op) -> None:
    if op.kind not in ("get", "put", "delete", "cas"):
        raise ValueError(f"register model has no operation {op.kind!r}: {op}")
    if op.kind == "cas":
        if not (isinstance(op.input, tuple) and len(op.input) == 2):
            raise ValueError(f"cas input must be (expected, new_value): {op}")
        if op.ok is True and op.output not in (CAS_OK, PRECONDITION_FAILED):
            raise ValueError(f"cas output must be {CAS_OK!r} or {PRECONDITION_FAILED!r}: {op}")
        if op.ok is False and op.output != PRECONDITION_FAILED:
            raise ValueError(f"a failed cas must have output {PRECONDITION_FAILED!r}: {op}")


def register_model(etag_of: Callable[[Any], Any] | None = None) -> Model:
    """The per-key register model; ``etag_of(value)`` is compared with a cas's expected ETag."""
    etag = etag_of or _identity
    if etag_of is None:
        step: Step = register_step
    else:
        def step(state: State, op: Op) -> tuple[bool, State]:
            return register_step(state, op, etag)
    return Model(name="register", step=step, droppable=_droppable, read_only=_read_only,
                 validate=_validate, analyze=lambda ops: analyze_register(ops, etag))


REGISTER = register_model()

"""Linearizability testing: record concurrent client histories and check them.

- :mod:`.history` — the :class:`Op` record, the rules for unknown outcomes, the
  :class:`Recorder` clients use, JSON dump/load of histories.
- :mod:`.spec` — the :class:`Model` interface between a specification and the checker.
- :mod:`.model` — the per-key register specification (put/get/delete/cas), with its search
  reductions in :mod:`.register_analysis`.
- :mod:`.checker` — :func:`check` (Wing & Gong + Lowe's memoization, per key) and
  :func:`assert_linearizable`.
- :mod:`.synthetic` — seeded synthetic histories for testing the checker itself.
"""
from tests.linearizability.checker import (
    LINEARIZABLE, NOT_LINEARIZABLE, SKIPPED, TIMEOUT, CheckResult, Explanation, KeyResult, assert_linearizable, check,
)
from tests.linearizability.history import (
    NO_EFFECT, PRECONDITION_FAILED, UNKNOWN, Op, Outcome, Recorder, default_classify, dump_history, failed,
    load_history, returned, save_failing_history,
)
from tests.linearizability.model import CAS_OK, REGISTER, Model, register_model, register_step

__all__ = [
    "CAS_OK", "LINEARIZABLE", "NOT_LINEARIZABLE", "NO_EFFECT", "PRECONDITION_FAILED", "REGISTER", "SKIPPED", "TIMEOUT",
    "UNKNOWN", "CheckResult", "Explanation", "KeyResult", "Model", "Op", "Outcome", "Recorder",
    "assert_linearizable", "check", "default_classify", "dump_history", "failed", "load_history",
    "register_model", "register_step", "returned", "save_failing_history",
]

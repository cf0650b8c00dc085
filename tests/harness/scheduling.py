"""How the default run's pytest-xdist workers share the tests: by test file.

Each test file is one unit of work, handed whole to one worker, so a cluster a module
starts (a module-scoped fixture) is started once and torn down once; every file under
``tests/hosts/`` is one unit together, so their five-host deployment (a session fixture)
is started on one worker only. Units go out in collection order (the heavy directories,
fault, hosts, in-process and integration, come before the many small unit-test files), the
next one to whichever worker is about to run out of work.

This replaces pytest-xdist's own ``--dist loadgroup`` grouping, which reads the group from
an ``@group`` suffix that its worker writes into each test's node id: under pytest 9.2
(structured node ids) that write no longer takes effect, and every test would be a unit of
its own (module fixtures set up on both workers, and again whenever a worker comes back
to a file).
"""
from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

HOSTS = "tests/hosts/"


def unit_of(nodeid: str) -> str:
    """The unit of work of a test: its file, or ``tests/hosts`` for every many-hosts test."""
    path = nodeid.split("::", 1)[0]
    return HOSTS.rstrip("/") if path.startswith(HOSTS) else path


class FileScheduling(LoadScopeScheduling):
    """``--dist loadscope`` with one scope per test file (and one for ``tests/hosts``)."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

"""A service process started by ``objstore up`` ends when ``objstore up`` ends, however it ends.

``objstore up`` stops its children in order on Ctrl-C or SIGTERM, but a SIGKILL (or an OOM
kill) of the supervisor gave it no chance, and the children, each in its own session, went
on serving with nobody to stop them. The launcher names itself in ``OBJSTORE_PARENT_PID``;
a child that finds it asks the kernel for SIGTERM when its parent dies (Linux
``PR_SET_PDEATHSIG``), then checks that the parent is still the one named: a parent that
died between the fork and the request has already re-parented the child, which then ends
at once. SIGTERM takes the service's ordinary stop path (drain, close, flush).

Without the variable (a service started by hand, by systemd or by the test harness) nothing
changes. On systems without ``prctl`` the request is skipped. A child that is not an objstore
service (Prometheus) makes the same request between fork and exec
(:func:`ending_with_parent`, ``Child.start(end_with_parent=True)``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from typing import Callable

PARENT_PID_ENV = "OBJSTORE_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _request_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` when this process's parent thread ends; False if unsupported."""
    prctl = _prctl()
    return prctl is not None and prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0


def ending_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """For a child that is not an objstore service (Prometheus): a ``preexec_fn`` that asks
    the kernel for ``sig`` when the calling process dies (kept across the child's exec), and
    ends the child at once if it has died already. None where ``prctl`` is missing. libc is
    loaded here, in the parent: between fork and exec the child only calls it."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def end_with_parent(env: dict[str, str] | None = None) -> None:
    """If ``OBJSTORE_PARENT_PID`` names the parent, end this process when that parent dies.

    Exits at once (status 1) when the parent named is already gone."""
    value = (os.environ if env is None else env).pop(PARENT_PID_ENV, "")  # not for grandchildren
    if not value.isdigit():
        return
    if not _request_parent_death_signal(signal.SIGTERM):
        return
    if os.getppid() != int(value):
        sys.stderr.write(f"the process that started this one ({value}) has ended; stopping\n")
        raise SystemExit(1)

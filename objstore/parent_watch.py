"""A service process started by ``objstore up`` ends when ``objstore up`` ends, however it ends.

``objstore up`` stops its children in order on Ctrl-C or SIGTERM, but a SIGKILL (or an OOM
kill) of the supervisor gave it no chance, and the children, each in its own session, went
on serving with nobody to stop them. The launcher names itself in ``OBJSTORE_PARENT_PID``;
a child that finds it asks the kernel for SIGTERM when its parent dies (Linux
``PR_SET_PDEATHSIG``), then checks that the parent is still the one named: a parent that
died between the fork and the request has already re-parented the child, which then ends
at once. SIGTERM takes the service's ordinary stop path (drain, close, flush).

Without the variable (a service started by hand, by systemd or by the test harness) nothing
changes. On systems without ``prctl`` the request is skipped.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PARENT_PID_ENV = "OBJSTORE_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def _request_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` when this process's parent thread ends; False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


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

"""An opt-in CPU profile of one service process, for measuring where a request's CPU goes.

``OBJSTORE_PROFILE=<role>:<dir>`` in a service's environment (``objstore up`` passes its
own environment to its children) runs that role's processes under :mod:`cProfile` timed by
the thread's CPU clock (user and system time, so socket syscalls count and time spent
waiting for a CPU on a loaded machine does not), and writes ``<dir>/<role>-<pid>.prof`` when
the process exits (read it with :mod:`pstats`). Unset, nothing is profiled; profiling slows
the process down (every Python call is timed), so its figures are shares, not speeds.
"""
from __future__ import annotations

import cProfile
import os
import time
from typing import Callable

PROFILE_ENV = "OBJSTORE_PROFILE"


def profile_target(role: str, env: dict[str, str] | None = None) -> str | None:
    """The folder to write ``role``'s profile to, or None when ``role`` is not profiled."""
    value = (os.environ if env is None else env).get(PROFILE_ENV, "")
    wanted, sep, folder = value.partition(":")
    return folder if sep and folder and wanted == role else None


def run_profiled(role: str, main: Callable[[], None]) -> None:
    """Run ``main()``, under the CPU profiler when ``OBJSTORE_PROFILE`` names ``role``."""
    folder = profile_target(role)
    if folder is None:
        main()
        return
    os.makedirs(folder, exist_ok=True)
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        main()
    finally:
        profiler.disable()
        profiler.dump_stats(os.path.join(folder, f"{role}-{os.getpid()}.prof"))

"""A child that is not an objstore service (Prometheus) started with ``end_with_parent``
ends when the process that started it is killed (SIGKILL: no chance to stop it)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

LAUNCHER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from objstore.cluster.supervisor import Child
    child = Child("sleeper", "x", "127.0.0.1:1", ["sleep", "60"], Path(sys.argv[1]))
    child.start(end_with_parent=True)
    print(child.pid, flush=True)
    time.sleep(60)
""")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_child_started_to_end_with_its_parent_ends_when_the_parent_is_killed(tmp_path: Path) -> None:
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(tmp_path / "child.log")],
                                stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    child_pid = 0
    try:
        line = launcher.stdout.readline()  # type: ignore[union-attr]
        child_pid = int(line)
        assert not _gone(child_pid)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 10
        while not _gone(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child_pid)
    finally:
        launcher.kill()
        launcher.wait()
        if child_pid and not _gone(child_pid):
            os.kill(child_pid, signal.SIGKILL)

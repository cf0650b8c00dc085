"""A benchmark stopped by SIGTERM runs its cleanup and answers 130, as on Ctrl-C.

The child process below stands in for a benchmark: its coroutine starts, then waits; its
``finally`` block (where a benchmark stops the processes it started and removes its data)
writes a file. SIGTERM must reach that block and end the command with KeyboardInterrupt.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ops.bench_metadata.spawn import EtcdCluster, MetadataNodes
from objstore.parent_watch import PARENT_PID_ENV

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, sys
from ops.cli.output import run_stoppable

async def bench(marker):
    print("started", flush=True)
    try:
        await asyncio.sleep(60)
    finally:
        open(marker, "w").write("cleaned up")

try:
    run_stoppable(bench(sys.argv[1]))
except KeyboardInterrupt:
    sys.exit(130)
sys.exit(0)
"""


def test_sigterm_runs_the_cleanup_and_answers_130(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(marker)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 130
        assert time.monotonic() - t0 < 20
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert marker.read_text() == "cleaned up"


def test_a_coroutine_that_ends_returns_its_value() -> None:
    from ops.cli.output import run_stoppable

    async def value() -> int:
        return 7

    assert run_stoppable(value()) == 7
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_benchmark_children_end_with_the_benchmark(tmp_path: Path) -> None:
    nodes = MetadataNodes(1, tmp_path / "m", secret="s")
    assert nodes.env is not None and nodes.env[PARENT_PID_ENV] == str(os.getpid())
    assert not nodes.end_with_parent  # metadata nodes watch the pid themselves
    assert EtcdCluster.end_with_parent  # etcd does not: the kernel's parent-death signal

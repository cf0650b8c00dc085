"""ops/bench_node_inprocess.py: every phase's calls are answered 2xx and counted."""
from __future__ import annotations

import json
import subprocess
import sys


def test_every_phase_is_served_and_measured() -> None:
    # A process of its own: the tool turns fsync into a no-op for the whole process.
    out = subprocess.run([sys.executable, "-m", "ops.bench_node_inprocess", "--calls", "24", "--connections", "4",
                          "--rounds", "1", "--json"], capture_output=True, text=True, timeout=120, check=True)
    rows = json.loads(out.stdout)
    assert [r["phase"] for r in rows] == ["put", "manifest", "batch", "blobs"]
    assert all(r["cpu_us_per_call"] > 0 and len(r["rounds"]) == 1 for r in rows)

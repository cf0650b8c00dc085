"""The benchmark reads a process's CPU time to the nanosecond, not in 10 ms ticks."""
from __future__ import annotations

import subprocess
import sys
import time

from ops.bench.monitor import process_cpu


def test_a_few_milliseconds_of_another_process_are_counted():
    """A child busy for ~30 ms and then asleep: /proc's tick counts could say 0.00 or 0.03;
    the process's CPU clock says ~0.03 to well under a millisecond."""
    code = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.03: pass\nprint(flush=True)\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()  # the busy part is over
        first = process_cpu(child.pid)
        time.sleep(0.05)
        assert process_cpu(child.pid) - first < 0.002  # asleep: no ticks' worth of rounding
        assert first >= 0.03
        assert first != round(first, 2)  # not a whole number of 10 ms ticks
    finally:
        child.kill()
        child.wait()

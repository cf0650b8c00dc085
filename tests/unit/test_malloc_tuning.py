"""Fixed glibc malloc thresholds: a buffer of a few MiB comes from the heap from the start."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")

# The size of the process's [heap] mapping, for the probes below.
_HEAP = """
def heap():
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            lo, hi = line.split()[0].split("-")
            return int(hi, 16) - int(lo, 16)
    return 0
"""

# In a fresh interpreter: allocate a 3 MiB buffer and print how much the [heap] mapping grew.
_PROBE = _HEAP + """
from objstore.malloc_tuning import fix_malloc_thresholds
print(fix_malloc_thresholds())
before = heap()
buf = bytearray(3 * 1024 * 1024)
print(heap() - before)
"""


def _probe(setting: str) -> tuple[str, int]:
    env = dict(os.environ, OBJSTORE_MALLOC_THRESHOLDS=setting)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    fixed, grew = out.stdout.split()
    return fixed, int(grew)


def test_fixed_thresholds_serve_a_3_mib_buffer_from_the_heap() -> None:
    fixed, grew = _probe("fixed")
    assert fixed == "True"
    assert grew >= 3 * 1024 * 1024


def test_the_default_setting_leaves_glibc_mapping_it_separately() -> None:
    fixed, grew = _probe("default")
    assert fixed == "False"
    assert grew < 3 * 1024 * 1024


# In a fresh interpreter: hold 40 buffers of 1 MiB (a large ec PUT's body chunks and shards
# in flight), free them all, and print how much of the heap's growth was kept.
_WORKING_SET = _HEAP + """
from objstore.malloc_tuning import fix_malloc_thresholds
fix_malloc_thresholds()
before = heap()
held = [bytes(1024 * 1024) for _ in range(40)]
grew = heap() - before
del held
print(grew, heap() - before)
"""


def test_a_freed_40_mib_working_set_stays_in_the_heap_for_the_next_write() -> None:
    out = subprocess.run([sys.executable, "-c", _WORKING_SET], capture_output=True, text=True, check=True)
    grew, kept = (int(x) for x in out.stdout.split())
    assert grew >= 40 * 1024 * 1024
    assert kept >= grew - 1024 * 1024  # not trimmed: the next PUT does not fault its pages in again

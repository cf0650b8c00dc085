"""Fixed glibc malloc thresholds for the data path's buffers.

glibc serves an allocation above its mmap threshold (128 KiB at start) with a fresh
``mmap`` and returns it to the system when freed; it raises the threshold only once such a
block is freed, and trims the heap's free top above twice the threshold. The data path
allocates and frees buffers of 256 KiB to a few MiB all the time (a socket read, a storage
node's 1 MiB chunk read, a gateway's body chunk): while the threshold is low, or after the
heap was trimmed, every such buffer costs one page fault per 4 KiB (and a zeroed page) on
first touch. How often that happens depended on what the process had served before (a
gateway that had only served GETs since its start paid it on every socket read). Fixing the
thresholds makes it the same from the start: buffers below ``MMAP_THRESHOLD`` come from
the heap and are reused, and at most ``TRIM_THRESHOLD`` of free heap top is kept per arena.
That is 64 MiB: a 64 MiB ec:4+2 PUT holds ~20 MiB of body chunks and shards at its peak and
frees them all at its end; with 16 MiB the heap's top was trimmed after every such PUT and
the next one faulted ~3,400 pages in again on the gateway (~13 MiB, measured with
``perf record -e page-faults``: all in the body's 1 MiB chunk joins), against ~45 kept.

Called by the process entry (``ops/cli/services.py``) before serving;
``OBJSTORE_MALLOC_THRESHOLDS=default`` in the environment keeps glibc's own behaviour. A
no-op where the C library is not glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3


def fix_malloc_thresholds() -> bool:
    """Set glibc's mmap and trim thresholds (see the module); False when left as they were."""
    if os.environ.get("OBJSTORE_MALLOC_THRESHOLDS", "fixed") == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))

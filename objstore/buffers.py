"""Receive buffers whose memory is not zeroed first.

``bytearray(n)`` zero-fills its ``n`` bytes; a buffer that a socket read or a ``preadv``
is about to overwrite pays that write for nothing (profiled during 64 MiB GETs: 9% of the
gateway's CPU, 4% of a storage node's). :func:`uninitialized` returns a ``bytearray``
whose bytes are whatever the allocator had there. Only for buffers every handed-out byte
of which is written first: a caller hands out only the bytes it received into it.
"""
from __future__ import annotations

import ctypes

try:
    _from_string_and_size = ctypes.pythonapi.PyByteArray_FromStringAndSize
    _from_string_and_size.restype = ctypes.py_object
    _from_string_and_size.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
except AttributeError:  # not CPython
    _from_string_and_size = None


SMALL = 16 * 1024  # below this, zeroing costs less than the foreign call that skips it


def uninitialized(n: int) -> bytearray:
    """A ``bytearray`` of ``n`` bytes, not zeroed (see the module); a small one (``SMALL``)
    is zeroed all the same, which is cheaper for it."""
    if n < SMALL or _from_string_and_size is None:
        return bytearray(max(n, 0))
    return _from_string_and_size(None, n)

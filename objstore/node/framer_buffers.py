"""Reused buffer pairs for the ``BlockFramer`` of large blob writes.

Each large blob is laid out in two anonymous memory maps of about ``write_buffer`` bytes
(:class:`objstore.node.blob.BlockFramer`). A fresh map costs its page faults and zeroing
on first touch and its unmapping at the end: about 2 ms per blob, measured on this
machine — noticeable for the 8 MiB parts of a multipart upload (three replicas of eight
parts per 64 MiB object). ``FramerBuffers`` keeps up to ``keep`` pairs of one size for
the next blob instead.

Invariants:
- A pair is handed to one framer at a time: ``take`` removes it from the pool, ``give``
  puts it back only once nothing reads it any more (the caller's duty: after the last
  write of the blob, whether it committed or failed; a pair whose write was cancelled,
  its thread perhaps still reading, is never given back).
- The pool is bounded: at most ``keep`` pairs are kept; a pair given back beyond that is
  dropped (unmapped once its views are gone). Pairs are never shared between sizes.
"""
from __future__ import annotations

import mmap

from objstore.node.blob import MAX_HEADER_SIZE
from objstore.node.blobfiles import DIRECT_ALIGN

PAGE = mmap.PAGESIZE
SLACK = max(MAX_HEADER_SIZE, DIRECT_ALIGN)  # room for any record header, or the carried aligned rest


KEEP_BYTES = 18 * 1024 * 1024  # kept buffers per pool, by default


class FramerBuffers:
    """Pairs of ``size``-byte memory maps (``size``: framed bytes plus ``SLACK``, page-rounded)."""

    def __init__(self, framed: int, keep: int | None = None) -> None:
        self.size = -(-(framed + SLACK) // PAGE) * PAGE
        self.keep = max(1, KEEP_BYTES // (2 * self.size)) if keep is None else keep
        self._free: list[list[mmap.mmap]] = []

    def take(self, need: int) -> list[mmap.mmap] | None:
        """A pair of at least ``need`` bytes each (None if ``need`` is over ``size``: the
        caller then lets the framer map its own)."""
        if need > self.size:
            return None
        if self._free:
            return self._free.pop()
        return [mmap.mmap(-1, self.size) for _ in range(2)]

    def give(self, pair: list[mmap.mmap]) -> None:
        """Return a pair taken here that nothing reads any more."""
        if len(self._free) < self.keep and all(len(b) == self.size for b in pair):
            self._free.append(pair)

    def __len__(self) -> int:
        return len(self._free)

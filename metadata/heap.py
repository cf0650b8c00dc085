"""The metadata node's heap and Python's cyclic garbage collector.

The object index (:mod:`metadata.fsm.object_index`) and the placement index hold a few
large containers (sorted key lists, sets of keys per node) that live as long as the
process. A full cyclic collection walks every reference of every tracked container, so at
a million objects one costs ~240 ms of the event loop: a pause that lands in whatever
request is running (a listing page's p99). They are not garbage, so walking them is waste.

- :func:`settle` collects once, then *freezes* everything alive (``gc.freeze``: moved to
  the permanent generation, which collections skip). Called after the state is loaded at
  start-up and after each snapshot is written, so the containers the index grew since the
  last call are frozen too; each later collection walks only what was made since. Its own
  collection walks only what is not yet frozen (what the index grew since the last
  settle), so it is cheap when called regularly.
- :func:`collector_paused` switches the collector off around a bulk load (a snapshot
  restore creates millions of objects, none of them garbage: each automatic collection on
  the way would walk the growing index again).

A frozen object freed by reference counting is freed as usual; only a reference *cycle*
among frozen objects is never reclaimed. The index holds no cycles, and :func:`settle`
collects before freezing, so nothing already unreachable is kept.
"""
from __future__ import annotations

import contextlib
import gc
import time
from typing import Iterator


def settle() -> float:
    """Collect cyclic garbage, then freeze every object alive (see the module docstring);
    returns the seconds it took."""
    t = time.perf_counter()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - t


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Automatic cyclic collections off while the body runs (back on after it, if they were
    on before; nested uses keep it off until the outermost one ends)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def frozen_count() -> int:
    """Objects in the permanent generation (frozen by :func:`settle`)."""
    return gc.get_freeze_count()

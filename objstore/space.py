"""How much free space a storage node keeps back, and when the cluster counts it full.

A node admits a blob only if the write leaves ``reserve`` bytes free (the reserve keeps
room for deletes and tombstones). The metadata leader marks a node ``full`` (no new
placements) once its free space is below ``FULL_AT`` reserves and ``up`` again above
``FULL_HYSTERESIS`` reserves (metadata.liveness). ``objstore up`` checks the same
threshold before it starts, so a disk that is already too full is named at once instead
of every write failing.
"""
from __future__ import annotations

MAX_RESERVE = 1024**3
RESERVE_FRACTION = 20  # the default reserve is 1/20 (5%) of the capacity, at most MAX_RESERVE
FULL_AT = 2.0  # a node is full once its free space is below this many reserves
FULL_HYSTERESIS = 3.0  # a full node is up again once its free space exceeds this many reserves


def default_reserve(capacity_bytes: int) -> int:
    """The free space a node keeps back by default: 5% of its capacity, at most 1 GiB."""
    return min(int(capacity_bytes) // RESERVE_FRACTION, MAX_RESERVE)


def full_below(reserve_bytes: int) -> int:
    """The free space under which a node with ``reserve_bytes`` in reserve counts as full."""
    return int(FULL_AT * reserve_bytes)


def human_size(n: float | None) -> str:
    """A byte count for people: ``512 B``, ``1.5 MiB``; ``-`` for unknown."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)

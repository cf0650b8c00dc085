"""The metadata node's heap settling (metadata.heap): long-lived objects leave the cyclic
collector's generations, and the collector can be paused around a bulk load."""
from __future__ import annotations

import gc

import pytest

from metadata import heap


@pytest.fixture(autouse=True)
def unfrozen():
    yield
    gc.unfreeze()


def in_generations(obj: object) -> bool:
    """Whether a collection can still walk ``obj`` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


def test_settle_freezes_what_is_alive_and_frees_cyclic_garbage():
    index = [[str(i)] for i in range(100)]  # long-lived containers, as the object index's
    cycle: list = []
    cycle.append(cycle)
    del cycle  # garbage only the cyclic collector can free
    before = gc.get_freeze_count()
    assert in_generations(index) and in_generations(index[0])
    took = heap.settle()
    assert took >= 0
    assert not in_generations(index) and not in_generations(index[0])
    assert gc.get_freeze_count() > before
    assert gc.get_stats()[2]["collected"] > 0  # the cycle was collected, not frozen
    made_after = [1]
    assert in_generations(made_after)  # only what was alive at the call is frozen


def test_collector_paused_restores_the_previous_state():
    assert gc.isenabled()
    with heap.collector_paused():
        assert not gc.isenabled()
        with heap.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    gc.disable()
    try:
        with heap.collector_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


def test_collector_paused_reenables_after_an_error():
    with pytest.raises(RuntimeError):
        with heap.collector_paused():
            raise RuntimeError("load failed")
    assert gc.isenabled()

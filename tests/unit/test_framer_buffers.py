"""The pool of buffer pairs the storage node's large-blob framers reuse."""
from __future__ import annotations

import mmap

from objstore.node.framer_buffers import SLACK, FramerBuffers


def test_a_pair_given_back_is_taken_again_and_the_pool_is_bounded() -> None:
    pool = FramerBuffers(framed=10_000, keep=2)
    assert pool.size % mmap.PAGESIZE == 0 and pool.size >= 10_000 + SLACK
    first = pool.take(10_000)
    assert first is not None and len(first) == 2 and all(len(b) == pool.size for b in first)
    pool.give(first)
    assert pool.take(10_000) is first and len(pool) == 0
    pairs = [pool.take(10_000) for _ in range(3)]
    assert len({id(p) for p in pairs}) == 3  # pairs out at once are distinct
    for p in pairs:
        assert p is not None
        pool.give(p)
    assert len(pool) == 2  # at most ``keep`` kept


def test_a_need_over_the_pool_size_gets_no_pair() -> None:
    pool = FramerBuffers(framed=10_000)
    assert pool.take(pool.size + 1) is None
    assert pool.take(pool.size) is not None


def test_a_pair_of_another_size_is_not_kept() -> None:
    pool = FramerBuffers(framed=10_000)
    pool.give([mmap.mmap(-1, 4096), mmap.mmap(-1, 4096)])
    assert len(pool) == 0


def test_a_pool_keeps_by_default_what_fits_in_its_byte_budget() -> None:
    from objstore.node.framer_buffers import KEEP_BYTES
    from objstore.node.store import StoreOptions

    big = FramerBuffers(framed=StoreOptions().write_buffer)
    assert big.keep == 2 and 2 * big.size * big.keep <= KEEP_BYTES
    assert FramerBuffers(framed=1024 * 1024).keep == 8
    assert FramerBuffers(framed=64 * 1024 * 1024).keep == 1  # always one, even past the budget
    pairs = [big.take(big.size) for _ in range(4)]
    for p in pairs:
        assert p is not None
        big.give(p)
    assert len(big) == 2

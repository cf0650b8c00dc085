"""Erasure coding end to end on pure code: encode a body, lose shards, read it back.

Hypothesis draws K (2..8), M (1..4), a stripe size and alignment, an object size around
the stripe edges (0, 1, stripe-1, stripe, stripe+1, many stripes), body chunking, up to M
lost shards and a byte range; every read must return the exact bytes, and a healthy
read's plan must name exactly the data-shard bytes that hold the range.
"""
from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objstore.erasure import (
    BadShards,
    NotEnoughShards,
    StripeEncoder,
    StripeLayout,
    aencode_stream,
    assemble_stripe,
    decode_stripe,
    encode_stream,
    encode_stripe,
    reassemble,
)
from objstore.errors import InternalError, ServiceUnavailable

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cases(draw):
    k = draw(st.integers(2, 8))
    m = draw(st.integers(1, 4))
    layout = StripeLayout(k, m, draw(st.integers(1, 300)), align=draw(st.sampled_from([1, 4, 16, 64])))
    sb = layout.stripe_bytes
    size = draw(st.one_of(
        st.sampled_from([0, 1, sb - 1, sb, sb + 1, 2 * sb, 3 * sb - 1]),
        st.integers(0, 6 * sb),
    ))
    seed = draw(st.integers(0, 2**32))
    lost = draw(st.sets(st.integers(0, k + m - 1), max_size=m))
    return layout, size, seed, lost


def body(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def chunked(data: bytes, rng: random.Random) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        step = rng.choice([1, 7, 100, 1000, len(data)])
        out.append(data[pos:pos + step])
        pos += step
    return out


def store(layout: StripeLayout, data: bytes, rng: random.Random) -> list[bytes]:
    """The K+M shard blobs of ``data``: shard i of every stripe, appended in order."""
    blobs = [bytearray() for _ in range(layout.n)]
    enc = StripeEncoder(layout)
    for chunk in chunked(data, rng):
        for shards in enc.feed(chunk):
            assert len(shards) == layout.n
            for i, s in enumerate(shards):
                blobs[i] += s
        assert enc.buffered < layout.stripe_bytes
    last = enc.finish()
    if last is not None:
        for i, s in enumerate(last):
            blobs[i] += s
    assert enc.size == len(data)
    return [bytes(b) for b in blobs]


def healthy_read(layout, size, blobs, first, last) -> bytes:
    plan = layout.read_plan(size, first, last)
    sets = [{s.shard: blobs[s.shard][r.offset + s.start:r.offset + s.end] for s in r.spans} for r in plan]
    return b"".join(reassemble(layout, plan, sets))


def degraded_read(layout, size, blobs, lost, first, last, rng=None) -> bytes:
    """Read from the ``window`` columns of the shards not lost (only K of them with ``rng``)."""
    plan = layout.read_plan(size, first, last)
    alive = [i for i in range(layout.n) if i not in lost]
    sets = []
    for r in plan:
        lo, hi = r.window
        use = rng.sample(alive, layout.k) if rng else alive
        sets.append({i: blobs[i][r.offset + lo:r.offset + hi] for i in use})
    return b"".join(reassemble(layout, plan, sets))


@PROPS
@given(case=cases(), pick=st.tuples(st.floats(0, 1), st.floats(0, 1)))
def test_reads_are_byte_identical_whole_and_ranged(case, pick):
    layout, size, seed, lost = case
    data = body(size, seed)
    rng = random.Random(seed)
    blobs = store(layout, data, rng)
    assert all(len(b) == layout.shard_file_size(size) for b in blobs)
    assert layout.stripe_count(size) * layout.stripe_bytes - layout.padding(size) >= size
    assert 0 <= layout.padding(size) < layout.k
    if size == 0:
        assert layout.stripe_count(0) == 0 and blobs == [b""] * layout.n
        return
    a, b = sorted(int(p * (size - 1)) for p in pick)
    for first, last in [(0, size - 1), (a, b), (b, b)]:
        want = data[first:last + 1]
        assert healthy_read(layout, size, blobs, first, last) == want
        assert degraded_read(layout, size, blobs, lost, first, last) == want
        assert degraded_read(layout, size, blobs, lost, first, last, rng) == want


@PROPS
@given(case=cases(), pick=st.tuples(st.floats(0, 1), st.floats(0, 1)))
def test_read_plan_names_exactly_the_needed_bytes(case, pick):
    layout, size, _, _ = case
    if size == 0:
        with pytest.raises(ValueError):
            layout.read_plan(0, 0, 0)
        return
    first, last = sorted(int(p * (size - 1)) for p in pick)
    sb = layout.stripe_bytes
    needed = set()
    for o in range(first, last + 1):
        stripe, rel = divmod(o, sb)
        width = layout.stripe_width(size, stripe)
        needed.add((stripe, rel // width, rel % width))
    named = set()
    total = 0
    for r in layout.read_plan(size, first, last):
        assert r.offset == r.stripe * layout.shard_size and r.width == layout.stripe_width(size, r.stripe)
        for s in r.spans:
            assert 0 <= s.shard < layout.k and 0 <= s.start < s.end <= r.width
            named.update((r.stripe, s.shard, c) for c in range(s.start, s.end))
            total += s.length
    assert named == needed
    assert total == last - first + 1  # no shard byte fetched twice or needlessly


@PROPS
@given(case=cases(), extra=st.integers(1, 4))
def test_fewer_than_k_shards_is_not_enough_shards(case, extra):
    layout, size, seed, _ = case
    shards = encode_stripe(body(max(size, 1), seed)[:layout.stripe_bytes], layout.k, layout.m)
    keep = random.Random(seed).sample(range(layout.n), max(0, layout.k - extra))
    with pytest.raises(NotEnoughShards) as err:
        decode_stripe({i: shards[i] for i in keep}, layout.k, layout.m)
    assert isinstance(err.value, ServiceUnavailable) and err.value.status == 503
    assert f"only {len(keep)} of the {layout.k} shards" in err.value.message


@PROPS
@given(case=cases())
def test_any_k_shards_decode_the_stripe(case):
    layout, size, seed, lost = case
    data = body(size, seed)[:layout.stripe_bytes]
    shards = encode_stripe(data, layout.k, layout.m)
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == max(1, -(-len(data) // layout.k))
    assert b"".join(shards[:layout.k])[:len(data)] == data  # data shards are the bytes
    alive = {i: s for i, s in enumerate(shards) if i not in lost}
    assert decode_stripe(alive, layout.k, layout.m, len(data)) == data
    chosen = dict(random.Random(seed).sample(sorted(alive.items()), layout.k))
    assert decode_stripe(chosen, layout.k, layout.m, len(data)) == data


def test_inconsistent_shards_are_bad_shards():
    shards = encode_stripe(b"0123456789abcdef", 4, 2)
    with pytest.raises(BadShards, match="differ in length") as err:
        decode_stripe({0: shards[0], 1: shards[1] + b"x", 4: shards[4], 5: shards[5]}, 4, 2)
    assert isinstance(err.value, InternalError) and err.value.status == 500
    with pytest.raises(BadShards, match="outside 0..5"):
        decode_stripe({0: shards[0], 1: shards[1], 2: shards[2], 6: shards[5]}, 4, 2)
    with pytest.raises(BadShards, match="does not fit"):
        decode_stripe(dict(enumerate(shards)), 4, 2, size=17)
    layout = StripeLayout(4, 2, 16, align=1)
    (read,) = layout.read_plan(16, 3, 12)
    with pytest.raises(BadShards, match="columns"):
        assemble_stripe(layout, read, {i: shards[i][:2] for i in range(4, 6)} | {0: shards[0]})
    with pytest.raises(NotEnoughShards):
        assemble_stripe(layout, read, {i: shards[i] for i in (1, 4, 5)})


def test_layout_arithmetic_with_default_alignment():
    """4+2 at 1 MiB: 256 KiB shards; 6 shards of 64 KiB-aligned width for 6+3."""
    lay = StripeLayout(4, 2, 1 << 20)
    assert (lay.shard_size, lay.stripe_bytes, lay.n) == (256 << 10, 1 << 20, 6)
    size = 2 * (1 << 20) + 5
    assert (lay.stripe_count(size), lay.tail(size), lay.stripe_width(size, 2), lay.padding(size)) == (3, 5, 2, 3)
    assert lay.shard_file_size(size) == 2 * (256 << 10) + 2
    assert (lay.stripe_count(0), lay.padding(0), lay.shard_file_size(0)) == (0, 0, 0)
    odd = StripeLayout(6, 3, 1 << 20)
    assert odd.shard_size == 192 << 10 and odd.stripe_bytes == 6 * (192 << 10)
    for bad in [(0, 1, 10), (2, -1, 10), (200, 57, 10), (2, 1, 0)]:
        with pytest.raises(ValueError):
            StripeLayout(*bad)


def test_default_layout_round_trip_with_a_lost_data_shard():
    lay = StripeLayout(4, 2, 1 << 20)
    data = body(3 * lay.stripe_bytes // 2 + 12345, 7)
    blobs = store(lay, data, random.Random(1))
    for first, last in [(0, len(data) - 1), (300_000, 1_400_000), (len(data) - 1, len(data) - 1)]:
        assert degraded_read(lay, len(data), blobs, {1}, first, last) == data[first:last + 1]
        assert healthy_read(lay, len(data), blobs, first, last) == data[first:last + 1]


def test_async_encoding_matches_sync():
    lay = StripeLayout(3, 2, 100, align=8)
    data = body(1000, 3)

    async def chunks():
        for i in range(0, len(data), 77):
            yield data[i:i + 77]

    async def collect():
        return [s async for s in aencode_stream(lay, chunks())]

    assert asyncio.run(collect()) == list(encode_stream(lay, [data]))

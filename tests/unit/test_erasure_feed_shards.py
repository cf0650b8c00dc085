"""A whole stripe handed over as its K data shards is coded from them as they are
(``StripeEncoder.feed_shards``, ``encode_shards``): the same shards as through ``feed``."""
from __future__ import annotations

import os

import pytest

from gateway.datapath.erasure_write import _encode
from objstore.erasure import StripeEncoder, encode_stream
from objstore.erasure.codec import encode_shards, encode_stripe
from objstore.erasure.layout import StripeLayout

MIB = 1024 * 1024


@pytest.mark.parametrize("k,m", [(4, 2), (2, 1), (6, 3)])
def test_encode_shards_equals_encode_stripe(k, m):
    width = 4096 * 3
    data = os.urandom(k * width)
    pieces = [data[i * width:(i + 1) * width] for i in range(k)]
    assert [bytes(s) for s in encode_shards(pieces, k, m)] == [bytes(s) for s in encode_stripe(data, k, m)]
    with pytest.raises(ValueError):
        encode_shards(pieces[:-1], k, m)
    with pytest.raises(ValueError):
        encode_shards(pieces[:-1] + [pieces[-1] + b"x"], k, m)


def test_a_batch_of_whole_stripes_as_shards_is_coded_without_the_stripe_buffer_and_identically():
    lay = StripeLayout(4, 2, 4 * MIB)
    chunks = [os.urandom(MIB) for _ in range(8)] + [os.urandom(MIB // 2 + 5)]
    enc = StripeEncoder(lay)
    got = _encode(enc, chunks[0:4])
    assert len(got) == 1 and all(a is b for a, b in zip(got[0][:4], chunks[0:4]))  # the chunks themselves
    assert enc.buffered == 0 and enc.size == 4 * MIB
    got += _encode(enc, chunks[4:8]) + _encode(enc, chunks[8:])
    last = enc.finish()
    got += [last] if last is not None else []
    want = list(encode_stream(lay, [b"".join(chunks)]))
    assert [[bytes(s) for s in shards] for shards in got] == [[bytes(s) for s in shards] for shards in want]


def test_pieces_that_are_not_a_whole_stripe_are_refused_and_nothing_consumed():
    lay = StripeLayout(4, 2, 4 * MIB)
    enc = StripeEncoder(lay)
    assert enc.feed_shards([bytes(MIB)] * 3) is None
    assert enc.feed_shards([bytes(MIB)] * 3 + [bytes(MIB - 1)]) is None
    list(enc.feed(bytes(10)))
    assert enc.feed_shards([bytes(MIB)] * 4) is None  # bytes buffered: the stripe would not start here
    assert enc.size == 10 and enc.buffered == 10

"""Parity computed by the C module ``_gf256`` is zfec's, byte for byte, and zfec decodes it.

Hypothesis draws K, M (up to zfec's 256 shards in all), shard widths around the 32-byte
vectors and the 8 KiB passes of the C loop, and the data; the parity from zfec's matrix
must equal zfec's own, and any K of the K+M shards must give the data back through zfec.
"""
from __future__ import annotations

import os
import random
import shutil
import sysconfig

import pytest
import zfec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objstore.erasure import codec
from objstore.erasure.codec import decode_stripe, encode_stripe, parity_engine, parity_matrix

try:
    from objstore.erasure import _gf256 as gf256
except ImportError:
    gf256 = None
needs_module = pytest.mark.skipif(gf256 is None, reason="objstore.erasure._gf256 was not built here")
PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def zfec_parity(blocks: list[bytes], k: int, m: int) -> list[bytes]:
    return [bytes(p) for p in zfec.Encoder(k, k + m).encode(tuple(blocks), tuple(range(k, k + m)))]


@st.composite
def stripes(draw):
    k = draw(st.integers(1, 20))
    m = draw(st.integers(1, 8))
    width = draw(st.one_of(st.sampled_from([1, 31, 32, 33, 8191, 8192, 8193, 3 * 8192 + 17]),
                           st.integers(1, 70000)))
    seed = draw(st.integers(0, 2**32))
    return k, m, width, seed


@needs_module
@PROPS
@given(stripes())
def test_parity_is_zfecs_and_zfec_decodes_it(case) -> None:
    k, m, width, seed = case
    rng = random.Random(seed)
    blocks = [rng.randbytes(width) for _ in range(k)]
    parity = gf256.encode([memoryview(b) for b in blocks], parity_matrix(k, m))
    assert parity == zfec_parity(blocks, k, m)
    shards = blocks + parity
    chosen = rng.sample(range(k + m), k)
    assert decode_stripe({i: shards[i] for i in chosen}, k, m) == b"".join(blocks)


@needs_module
def test_wide_codes_and_extreme_bytes() -> None:
    for k, m in ((2, 1), (4, 2), (10, 4), (200, 56), (1, 255)):
        for fill in (0x00, 0xFF, 0x80, 0x01):
            blocks = [bytes([fill ^ j % 256]) * 100 for j in range(k)]
            assert gf256.encode(blocks, parity_matrix(k, m)) == zfec_parity(blocks, k, m)


@needs_module
def test_encode_stripe_is_the_same_with_either_engine(monkeypatch) -> None:
    data = random.Random(7).randbytes(1 << 20)
    fast = encode_stripe(memoryview(data), 4, 2, views=True)
    monkeypatch.setattr(codec, "_gf256", None)
    assert parity_engine() == "zfec"
    slow = encode_stripe(memoryview(data), 4, 2, views=True)
    assert [bytes(s) for s in fast] == [bytes(s) for s in slow]


@needs_module
def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        gf256.encode([b"ab", b"abc"], parity_matrix(2, 1))
    with pytest.raises(ValueError):
        gf256.encode([b"ab", b"ab"], b"\x01\x02\x03")
    with pytest.raises(TypeError):
        gf256.encode([b"ab", 5], parity_matrix(2, 1))


CAN_BUILD = shutil.which("cc") is not None and os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))


@pytest.mark.skipif(not CAN_BUILD or os.environ.get("OBJSTORE_EC_PARITY") == "zfec",
                    reason="no C compiler or Python headers (or zfec asked for): zfec computes parity")
def test_the_vector_module_is_in_use_where_it_can_be_built() -> None:
    assert parity_engine() in ("gf256-gfni-avx512", "gf256-gfni", "gf256-avx2", "gf256")


def _levels() -> list[str]:
    """Every instruction set the module can compute with on this CPU (up to its best)."""
    if gf256 is None:
        return []
    order = ["none", "avx2", "gfni", "gfni-avx512"]
    return order[:order.index(gf256.simd()) + 1]


@needs_module
@pytest.mark.parametrize("level", ["none", "avx2", "gfni", "gfni-avx512"])
def test_every_instruction_set_computes_zfecs_parity(level: str) -> None:
    if level not in _levels():
        pytest.skip(f"this CPU has no {level}")
    before = gf256.select(level)
    try:
        assert gf256.simd() == level
        rng = random.Random(level)
        for k, m in ((4, 2), (2, 1), (10, 4), (1, 3), (200, 56)):
            for width in (1, 31, 32, 63, 64, 65, 8191, 8192, 8193, 3 * 8192 + 17, 1 << 20):
                if k * width > 4 << 20:
                    continue
                blocks = [rng.randbytes(width) for _ in range(k)]
                assert gf256.encode(blocks, parity_matrix(k, m)) == zfec_parity(blocks, k, m), (k, m, width)
        with pytest.raises(ValueError):
            gf256.select("sse9")
    finally:
        gf256.select(before)

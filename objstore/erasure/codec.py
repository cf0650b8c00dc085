"""Reed-Solomon coding of one stripe with zfec: K data shards and M parity shards.

Invariants:
- ``encode_stripe(data, k, m)`` returns K+M shards of ``ceil(len(data) / K)`` bytes
  each (at least 1). Shards 0..K-1 are ``data`` cut in order after zero padding at its
  end (under K bytes unless data is empty, so it may fill the last few shards); K..K+M-1
  are parity.
- ``decode_stripe`` rebuilds the K data shards from any K of the K+M, byte for byte.
  Coding is column-wise: byte c of every shard depends only on byte c of the others, so
  equal slices ``[lo, hi)`` of any K shards decode to the same slices of the data shards.
- No data shard present means no arithmetic: when all of 0..K-1 are given they are
  joined as they are.
- zfec's tables are built once per (K, M) and shared (``Encoder``/``Decoder`` hold no
  per-call state).
- Parity is zfec's, byte for byte, whichever code computes it: with the optional C module
  ``_gf256`` (vector instructions; built by setup.py where a compiler is present) it is
  computed from zfec's own coding matrix, read off zfec by encoding unit vectors (the code
  is linear), with GFNI's affine instruction where the CPU has it, else AVX2 byte shuffles
  (about four times faster than zfec's table loop); without it, or with
  ``OBJSTORE_EC_PARITY=zfec`` in the environment, zfec computes it. Decoding is zfec's.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import lru_cache

import zfec

from objstore.erasure.errors import BadShards, NotEnoughShards

Buffer = bytes | bytearray | memoryview


@lru_cache(maxsize=64)
def _encoder(k: int, n: int) -> zfec.Encoder:
    return zfec.Encoder(k, n)


try:
    from objstore.erasure import _gf256
except ImportError:  # not compiled here: zfec computes parity
    _gf256 = None
if os.environ.get("OBJSTORE_EC_PARITY", "") == "zfec":
    _gf256 = None


@lru_cache(maxsize=64)
def parity_matrix(k: int, m: int) -> bytes:
    """zfec's parity coefficients for K+M, M rows of K bytes: byte ``r * K + j`` is what
    data shard j is multiplied by in parity shard K+r (read off zfec by encoding, for each
    j, one-byte shards that are 1 at j and 0 elsewhere)."""
    enc = _encoder(k, k + m)
    rows = [enc.encode(tuple(b"\x01" if i == j else b"\x00" for i in range(k)), tuple(range(k, k + m)))
            for j in range(k)]
    return bytes(rows[j][r][0] for r in range(m) for j in range(k))


def parity_engine() -> str:
    """What computes parity in this process: ``"gf256-gfni-avx512"``, ``"gf256-gfni"``
    (GFNI with AVX2), ``"gf256-avx2"``, ``"gf256"`` (the C module without vector
    instructions) or ``"zfec"``."""
    if _gf256 is None:
        return "zfec"
    simd = _gf256.simd()
    return "gf256" if simd == "none" else f"gf256-{simd}"


def _parity(blocks: list, k: int, m: int) -> list[bytes]:
    if _gf256 is not None:
        return _gf256.encode(blocks, parity_matrix(k, m))
    return [bytes(p) for p in _encoder(k, k + m).encode(tuple(blocks), tuple(range(k, k + m)))]


@lru_cache(maxsize=64)
def _decoder(k: int, n: int) -> zfec.Decoder:
    return zfec.Decoder(k, n)


def split_data(data: Buffer, k: int, *, views: bool = False) -> list[bytes]:
    """``data``, zero-padded at its end, cut into K shards of ``max(1, ceil(len / K))`` bytes.

    With ``views`` the shards of unpadded data are memoryviews of ``data`` (no copy):
    ``data`` must then not change while they are in use."""
    width = max(1, -(-len(data) // k))
    pad = k * width - len(data)
    view = memoryview(bytes(data) + bytes(pad)) if pad else memoryview(data)
    if views:
        return [view[j * width:(j + 1) * width] for j in range(k)]  # type: ignore[misc]
    return [bytes(view[j * width:(j + 1) * width]) for j in range(k)]


def encode_stripe(data: Buffer, k: int, m: int, *, views: bool = False) -> list[bytes]:
    """The K+M shards of one stripe (see the module docstring); with ``views`` the data
    shards are views of ``data`` (see ``split_data``)."""
    if k < 1 or m < 0:
        raise ValueError(f"need K >= 1 and M >= 0, got K={k} M={m}")
    blocks = split_data(data, k, views=views)
    if m == 0:
        return blocks
    return blocks + _parity(blocks, k, m)


def encode_shards(data_shards: Sequence[Buffer], k: int, m: int) -> list[Buffer]:
    """The K+M shards of a stripe given as its K data shards of equal length (kept as they
    are, views or bytes: they must not change while the shards are in use)."""
    if len(data_shards) != k or len({len(s) for s in data_shards}) > 1:
        raise ValueError(f"need K={k} data shards of one length")
    blocks = list(data_shards)
    if m == 0:
        return blocks
    return blocks + _parity(blocks, k, m)


def decode_stripe(shards: Mapping[int, Buffer], k: int, m: int, size: int | None = None) -> bytes:
    """The stripe's data from any K of its shards (``{index: bytes}``), cut to ``size``.

    Raises NotEnoughShards when fewer than K shards are given, BadShards when an index is
    outside 0..K+M-1 or the shards differ in length (or ``size`` exceeds their data).
    """
    n = k + m
    bad = sorted(i for i in shards if not 0 <= i < n)
    if bad:
        raise BadShards(f"shard index {bad[0]} outside 0..{n - 1} for K={k} M={m}")
    if len(shards) < k:
        raise NotEnoughShards(
            f"only {len(shards)} of the {k} shards needed to rebuild the stripe are available "
            f"(have {sorted(shards)}, K={k} M={m})"
        )
    widths = {len(b) for b in shards.values()}
    if len(widths) != 1:
        raise BadShards(f"shards of one stripe differ in length: {sorted(widths)}")
    width = widths.pop()
    if size is not None and not 0 <= size <= k * width:
        raise BadShards(f"size {size} does not fit {k} shards of {width} bytes")
    if all(j in shards for j in range(k)):
        data = b"".join(bytes(shards[j]) for j in range(k))
    else:
        # zfec wants exactly K blocks; prefer data shards (they come back as they are).
        chosen = sorted(shards)[:k]
        blocks = _decoder(k, n).decode(tuple(shards[i] for i in chosen), tuple(chosen))
        data = b"".join(bytes(b) for b in blocks)
    return data if size is None else data[:size]

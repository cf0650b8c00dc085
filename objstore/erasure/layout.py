"""Where an object's bytes live in an erasure-coded layout: pure arithmetic, no IO.

An object of ``size`` bytes is cut into stripes of ``stripe_bytes`` (= K x ``shard_size``)
bytes; the last stripe holds the rest (``tail``) and may be shorter. Each stripe is split
into K equal data shards, zero-padded at the end of the last stripe only, and encoded into
M parity shards of the same length. Shard i of every stripe goes to node i, appended in
stripe order: node i's blob is ``shard_file_size(size)`` bytes, stripe s starting at byte
``s * shard_size``.

Invariants:
- Data shards are the stripe's bytes: data shard j of stripe s holds object bytes
  ``[s * stripe_bytes + j * w, s * stripe_bytes + (j + 1) * w)`` where ``w`` is that
  stripe's shard width. A healthy read fetches data shards only and decodes nothing.
- Full stripes have width ``shard_size``, a multiple of ``align``. The default alignment
  is the storage node's checksum block (64 KiB, ``objstore.node.blob``): every stripe's
  shard then starts on a block boundary, so reading or repairing one stripe verifies
  exactly its own blocks and never half of a neighbour's.
- The last stripe, when partial, has width ``ceil(tail / K)`` (not aligned: nothing comes
  after it in the blob), so its padding ``K * width - tail`` is below K bytes. A 1-byte
  object costs K+M one-byte shards, not K+M aligned ones. ``padding(size)`` records it;
  the true size comes from the object's metadata.
- A 0-byte object has no stripes and empty shard blobs.
- ``read_plan(size, first, last)`` names, per stripe, exactly the bytes of data shards
  that hold object bytes ``[first, last]`` (inclusive): no byte more.
"""
from __future__ import annotations

from dataclasses import dataclass

from objstore.node.blob import DEFAULT_BLOCK_SIZE

DEFAULT_ALIGN = DEFAULT_BLOCK_SIZE
MAX_SHARDS = 256  # zfec's limit on K+M


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class ShardSpan:
    """Bytes ``[start, end)`` of data shard ``shard`` within one stripe's shard."""

    shard: int
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class StripeRead:
    """What one stripe contributes to a ranged read.

    ``spans`` are in object order: the concatenation of their bytes is this stripe's part
    of the range. ``width`` is this stripe's shard width and ``offset`` where the stripe
    starts in every shard blob (add a span's ``start`` for the blob offset). For a
    degraded read (a spanned data shard is missing) fetch ``window`` (columns
    ``[lo, hi)``, the union of the spans) from any K shards: Reed-Solomon works column by
    column, so those columns alone rebuild the spans.
    """

    stripe: int
    offset: int
    width: int
    spans: tuple[ShardSpan, ...]

    @property
    def window(self) -> tuple[int, int]:
        return min(s.start for s in self.spans), max(s.end for s in self.spans)

    @property
    def length(self) -> int:
        return sum(s.length for s in self.spans)


@dataclass(frozen=True, slots=True)
class StripeLayout:
    """K data + M parity shards per stripe of about ``stripe_size`` bytes.

    ``stripe_size`` is the nominal stripe; the real one, ``stripe_bytes``, is it rounded
    up to a multiple of ``k * align``. Raises ValueError for K < 1, M < 0,
    K + M > 256, or a non-positive stripe size or alignment.
    """

    k: int
    m: int
    stripe_size: int
    align: int = DEFAULT_ALIGN

    def __post_init__(self) -> None:
        if self.k < 1 or self.m < 0 or self.k + self.m > MAX_SHARDS:
            raise ValueError(f"need 1 <= K, 0 <= M, K + M <= {MAX_SHARDS}; got K={self.k} M={self.m}")
        if self.stripe_size < 1 or self.align < 1:
            raise ValueError(f"stripe_size and align must be positive, got {self.stripe_size}, {self.align}")

    @property
    def n(self) -> int:
        """Shards per stripe: K + M."""
        return self.k + self.m

    @property
    def shard_size(self) -> int:
        """Width of a full stripe's shard: ceil(stripe_size / K) rounded up to ``align``."""
        return _ceil_div(_ceil_div(self.stripe_size, self.k), self.align) * self.align

    @property
    def stripe_bytes(self) -> int:
        """Object bytes in a full stripe."""
        return self.k * self.shard_size

    def stripe_count(self, size: int) -> int:
        """Stripes of an object of ``size`` bytes (0 for an empty object)."""
        return _ceil_div(size, self.stripe_bytes)

    def tail(self, size: int) -> int:
        """Object bytes in the last stripe (0 for an empty object)."""
        if size <= 0:
            return 0
        return size - (self.stripe_count(size) - 1) * self.stripe_bytes

    def stripe_width(self, size: int, stripe: int) -> int:
        """Shard width of ``stripe``: ``shard_size``, or less for a partial last stripe."""
        count = self.stripe_count(size)
        if not 0 <= stripe < count:
            raise ValueError(f"stripe {stripe} out of range for {count} stripes")
        if stripe < count - 1:
            return self.shard_size
        return _ceil_div(self.tail(size), self.k)

    def stripe_data_size(self, size: int, stripe: int) -> int:
        """Object bytes held by ``stripe``."""
        count = self.stripe_count(size)
        if not 0 <= stripe < count:
            raise ValueError(f"stripe {stripe} out of range for {count} stripes")
        return self.stripe_bytes if stripe < count - 1 else self.tail(size)

    def padding(self, size: int) -> int:
        """Zero bytes that pad the last stripe's data shards (always < K)."""
        if size <= 0:
            return 0
        return self.k * self.stripe_width(size, self.stripe_count(size) - 1) - self.tail(size)

    def shard_file_size(self, size: int) -> int:
        """Bytes of every shard blob (data and parity alike) of an object of ``size``."""
        if size <= 0:
            return 0
        count = self.stripe_count(size)
        return (count - 1) * self.shard_size + self.stripe_width(size, count - 1)

    def read_plan(self, size: int, first: int, last: int) -> tuple[StripeRead, ...]:
        """The data-shard bytes holding object bytes ``[first, last]`` (inclusive).

        Raises ValueError unless ``0 <= first <= last < size`` (resolving an S3 Range
        header into that, or answering 416, is the caller's job).
        """
        if not 0 <= first <= last < size:
            raise ValueError(f"range [{first}, {last}] outside an object of {size} bytes")
        reads: list[StripeRead] = []
        sb = self.stripe_bytes
        for stripe in range(first // sb, last // sb + 1):
            base = stripe * sb
            width = self.stripe_width(size, stripe)
            lo = max(first, base) - base  # stripe-relative, inclusive
            hi = min(last, base + sb - 1) - base
            spans = tuple(
                ShardSpan(j, max(lo - j * width, 0), min(hi - j * width + 1, width))
                for j in range(lo // width, hi // width + 1)
            )
            reads.append(StripeRead(stripe, stripe * self.shard_size, width, spans))
        return tuple(reads)

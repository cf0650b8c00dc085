"""Streaming: body chunks in, stripes' shard sets out; shard sets in, a range's bytes out.

Invariants:
- ``StripeEncoder`` holds at most one stripe of body (``stripe_bytes``) between calls,
  whatever the chunk sizes, and yields each stripe's K+M shards as soon as the stripe
  is complete; ``finish`` encodes the partial last stripe. Encoding the stripes it yields,
  in order, is the layout of ``StripeLayout`` for the body's size.
- ``assemble_stripe`` returns exactly the bytes a ``StripeRead`` names, from either the
  spanned data shards' spans (healthy) or the ``window`` columns of any K shards
  (degraded). ``reassemble`` chains it over a read plan.
"""
from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence

from objstore.erasure.codec import Buffer, decode_stripe, encode_shards, encode_stripe
from objstore.erasure.errors import BadShards
from objstore.erasure.layout import StripeLayout, StripeRead


class StripeEncoder:
    """Feed body chunks of any size; get each complete stripe's shards (a list of K+M).

    ``feed`` is a generator: iterate it fully before the next ``feed``. Use one encoder
    per object; after ``finish`` it is spent. Data shards may be views of the chunks fed
    (no copy): a chunk must not change while its shards are in use (``bytes`` never do).
    """

    def __init__(self, layout: StripeLayout) -> None:
        self.layout = layout
        self._buf = bytearray()
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        """Body bytes fed so far."""
        return self._size

    @property
    def buffered(self) -> int:
        """Body bytes held back for the next stripe (always < ``stripe_bytes`` between calls)."""
        return len(self._buf)

    def feed(self, chunk: Buffer) -> Iterator[list[bytes]]:
        if self._done:
            raise ValueError("StripeEncoder.feed after finish")
        lay = self.layout
        sb = lay.stripe_bytes
        view = memoryview(chunk)
        self._size += len(view)
        pos = 0
        while pos < len(view):
            if not self._buf and len(view) - pos >= sb:  # a whole stripe inside the chunk
                yield encode_stripe(view[pos:pos + sb], lay.k, lay.m, views=True)  # body chunks never change
                pos += sb
                continue
            take = min(sb - len(self._buf), len(view) - pos)
            self._buf += view[pos:pos + take]
            pos += take
            if len(self._buf) == sb:
                stripe, self._buf = self._buf, bytearray()  # a full stripe buffer is never reused
                yield encode_stripe(stripe, lay.k, lay.m, views=True)

    def feed_shards(self, pieces: Sequence[Buffer]) -> list[bytes] | None:
        """One whole stripe given as its K data shards, each exactly ``shard_size`` bytes,
        with nothing buffered: its K+M shards, the data shards being the pieces themselves
        (no copy into a stripe buffer). None, with nothing consumed, when the pieces are
        not that (then ``feed`` them)."""
        lay = self.layout
        if (self._done or self._buf or len(pieces) != lay.k
                or any(len(p) != lay.shard_size for p in pieces)):
            return None
        self._size += lay.stripe_bytes
        return encode_shards(pieces, lay.k, lay.m)

    def finish(self) -> list[bytes] | None:
        """The partial last stripe's shards, or None when the body ended on a stripe edge."""
        self._done = True
        if not self._buf:
            return None
        stripe, self._buf = self._buf, bytearray()
        return encode_stripe(stripe, self.layout.k, self.layout.m)


def encode_stream(layout: StripeLayout, chunks: Iterable[Buffer]) -> Iterator[list[bytes]]:
    """Every stripe's shards for a body given as chunks, in stripe order."""
    enc = StripeEncoder(layout)
    for chunk in chunks:
        yield from enc.feed(chunk)
    last = enc.finish()
    if last is not None:
        yield last


async def aencode_stream(layout: StripeLayout, chunks: AsyncIterable[Buffer]) -> AsyncIterator[list[bytes]]:
    """``encode_stream`` for an async body (e.g. an aiohttp request's chunks)."""
    enc = StripeEncoder(layout)
    async for chunk in chunks:
        for shards in enc.feed(chunk):
            yield shards
    last = enc.finish()
    if last is not None:
        yield last


def assemble_stripe(layout: StripeLayout, read: StripeRead, shards: Mapping[int, Buffer]) -> bytes:
    """The bytes ``read`` names, from the shard pieces fetched for it.

    ``shards`` maps shard index to either that data shard's span (healthy: every spanned
    shard present with its span's length) or the ``read.window`` columns of that shard
    (degraded: any K shards). When a span is the whole window both readings agree.
    Raises NotEnoughShards/BadShards as ``decode_stripe`` does.
    """
    if all(s.shard in shards and len(shards[s.shard]) == s.length for s in read.spans):
        return b"".join([shards[s.shard] for s in read.spans])  # join copies once; views welcome
    lo, hi = read.window
    if any(len(b) != hi - lo for b in shards.values()):
        raise BadShards(f"stripe {read.stripe}: pieces must be the spans or columns [{lo}, {hi})")
    data = decode_stripe(shards, layout.k, layout.m)
    cols = hi - lo
    return b"".join(data[s.shard * cols + s.start - lo:s.shard * cols + s.end - lo] for s in read.spans)


def reassemble(
    layout: StripeLayout, plan: Sequence[StripeRead], shard_sets: Iterable[Mapping[int, Buffer]],
) -> Iterator[bytes]:
    """The range's bytes, one stripe at a time: ``shard_sets`` pairs with ``plan``."""
    count = 0
    for read, shards in zip(plan, shard_sets):
        count += 1
        yield assemble_stripe(layout, read, shards)
    if count != len(plan):
        raise BadShards(f"read plan has {len(plan)} stripes, got shard sets for {count}")

"""A copy source's bytes on their way to a new blob (CopyObject, UploadPartCopy), verified.

Invariant: no node ever completes a blob with wrong bytes. :class:`SourceStream` holds the
last chunk back until the byte count, and for a single-part source the MD5 (its ETag),
matched; otherwise it raises and the destination blob is never completed.
"""
from __future__ import annotations

import hashlib
from typing import AsyncIterator, Iterable

from gateway.auth.checksums import ChecksumSet
from objstore.errors import InternalError


class SourceStream:
    """The source's bytes on their way to the new blob, counted and summed.

    ``chunks()`` yields every chunk but the last as it arrives; the last only once the
    total is ``size`` and, when ``expect_md5`` is given, the MD5 matches. Otherwise it
    raises InternalError and the destination blob is never completed.
    """

    def __init__(self, source: AsyncIterator[bytes], size: int, expect_md5: str | None,
                 algorithms: Iterable[str]) -> None:
        self._source = source
        self.size = size
        self._expect_md5 = expect_md5
        self._md5 = hashlib.md5()
        self._sums = ChecksumSet(algorithms)
        self.received = 0

    @property
    def etag(self) -> str:
        return self._md5.hexdigest()

    @property
    def checksum_values(self) -> dict[str, str]:
        return self._sums.b64digests()

    async def chunks(self) -> AsyncIterator[bytes]:
        pending: bytes | None = None
        async for chunk in self._source:
            if not chunk:
                continue
            self.received += len(chunk)
            if self.received > self.size:
                raise InternalError("The copy source returned more bytes than its recorded size.")
            self._md5.update(chunk)
            self._sums.update(chunk)
            if pending is not None:
                yield pending
            pending = chunk
        if self.received != self.size:
            raise InternalError(f"The copy source returned {self.received} of {self.size} bytes.")
        if self._expect_md5 is not None and self._md5.hexdigest() != self._expect_md5:
            raise InternalError("The copy source's bytes do not match its ETag; the copy was not made.")
        if pending is not None:
            yield pending


def single_part_md5(etag: str) -> str | None:
    """The MD5 a body must have for this ETag, or None for a multipart ETag (``<md5>-N``)."""
    return None if "-" in etag else etag

"""GetObject/HeadObject with ``partNumber=N``: the byte range of one part, as S3 serves it.

Pure: looks only at the part number (parsed by the router), the Range header and the
version record.

S3's rules: N is an integer 1..10000 (else 400 InvalidArgument, from the router:
:func:`gateway.query.part_number`); with a Range header too, 400 InvalidRequest. For a multipart object, part N is the N-th part of the completed object
(1..``x-amz-mp-parts-count``) and is answered 206 with its Content-Range; N beyond the
count is 416 InvalidPartNumber. An object uploaded in one piece has one part: N=1 is the
whole object (206 with a Content-Range covering it), any other N is 416 InvalidPartNumber.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from objstore.errors import InvalidPartNumber, InvalidRequest
from objstore.types import ObjectVersion


@dataclass(frozen=True, slots=True)
class PartSlice:
    start: int
    end: int  # inclusive; end < start for an empty object
    parts_count: int | None  # for the x-amz-mp-parts-count header (multipart objects only)


def requested_part(n: int | None, headers: Mapping[str, str], v: ObjectVersion) -> PartSlice | None:
    """The part ``n`` a read asks for, or None when it names none. Raises as the module says."""
    if n is None:
        return None
    if headers.get("Range"):
        raise InvalidRequest("Cannot specify both Range header and partNumber query parameter.")
    if not v.parts:
        if n != 1:
            raise InvalidPartNumber(PartNumberRequested=n, ActualPartCount=1)
        return PartSlice(0, v.size - 1, None)
    if n > len(v.parts):
        raise InvalidPartNumber(PartNumberRequested=n, ActualPartCount=len(v.parts))
    start = sum(p.size for p in v.parts[: n - 1])
    return PartSlice(start, start + v.parts[n - 1].size - 1, len(v.parts))


def part_range(part: PartSlice) -> tuple[int, int] | None:
    """The inclusive byte range to serve (None for the one empty part of an empty object)."""
    return (part.start, part.end) if part.end >= part.start else None


def part_headers(part: PartSlice | None) -> dict[str, str]:
    """``x-amz-mp-parts-count`` for a part of a multipart object."""
    if part is None or part.parts_count is None:
        return {}
    return {"x-amz-mp-parts-count": str(part.parts_count)}

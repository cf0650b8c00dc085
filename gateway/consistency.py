"""Request headers of tunable consistency, parsed (pure).

- ``x-objstore-consistency`` on GetObject/HeadObject (``strong | quorum | one``), on the
  listings (``strong | one``) and on CreateBucket (the bucket's default for reads); when a
  read does not send it, the bucket's default applies. Anything else is 400 InvalidArgument.
- ``x-objstore-write-quorum: W`` on CreateBucket (the bucket's default) and per request on
  PutObject, CopyObject and CompleteMultipartUpload (``Policy.check_write_quorum``).

Responses name what served them: ``x-objstore-consistency`` always, ``x-objstore-replicas-read``
for quorum/one reads, ``x-objstore-replicas-written`` and ``x-objstore-commit-index`` for
writes (see :mod:`gateway.datapath.manifests`).
"""
from __future__ import annotations

from typing import Mapping

from objstore.errors import InvalidArgument
from objstore.manifest import LEVELS, check_level
from objstore.types import Policy

CONSISTENCY_HEADER = "x-objstore-consistency"
WRITE_QUORUM_HEADER = "x-objstore-write-quorum"
REPLICAS_READ_HEADER = "x-objstore-replicas-read"
REPLICAS_WRITTEN_HEADER = "x-objstore-replicas-written"
COMMIT_INDEX_HEADER = "x-objstore-commit-index"
NO_OVERLAP_HEADER = "x-objstore-quorum-overlap"  # "false" when R + W <= N for the version served
STALE_HEADER = "x-objstore-stale-entries"  # listing at one: how far the answering node's index lags


def read_level(headers: Mapping[str, str], bucket_default: str, allowed: tuple[str, ...] = LEVELS) -> str:
    """The level a read asks for, else the bucket's default (``strong`` where the default is
    not one ``allowed``, as for a listing in a ``quorum`` bucket). Raises InvalidArgument."""
    value = headers.get(CONSISTENCY_HEADER)
    if value is not None:
        return check_level(value.strip().lower(), allowed)
    return bucket_default if bucket_default in allowed else "strong"


def bucket_level(headers: Mapping[str, str]) -> str:
    """The default read level a CreateBucket asks for (``strong`` without the header)."""
    value = headers.get(CONSISTENCY_HEADER)
    return "strong" if value is None else check_level(value.strip().lower())


def requested_write_quorum(value: str | None, policy: Policy) -> int:
    """The write quorum a request asks for in ``x-objstore-write-quorum`` (0: none, the
    bucket's or the policy's default); raises InvalidArgument for a W the policy does not allow."""
    if value is None:
        return 0
    if not (value.strip().isascii() and value.strip().isdigit()) or len(value.strip()) > 3:
        raise InvalidArgument(f"Invalid write quorum {value!r}: expected a number of nodes.",
                              ArgumentName=WRITE_QUORUM_HEADER, ArgumentValue=value)
    return policy.check_write_quorum(int(value))


def write_quorum_of(headers: Mapping[str, str], policy: Policy, bucket_quorum: int) -> int:
    """The W of a write: the request's header, else the bucket's (0: the policy's default)."""
    return requested_write_quorum(headers.get(WRITE_QUORUM_HEADER), policy) or bucket_quorum

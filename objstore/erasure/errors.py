"""The errors of erasure coding, under the objstore error hierarchy.

- ``NotEnoughShards`` (503 ServiceUnavailable): fewer than K usable shards of a stripe;
  the object is unreadable until enough nodes come back, so the client should retry.
- ``BadShards`` (500 InternalError): the shards handed over cannot be of one stripe
  (inconsistent lengths, an index outside 0..K+M-1). A reader that meets it should treat
  the odd shard as missing, fetch another and log the fault.

Both keep their parent's S3 code, so ``error_from_code`` rebuilds the parent on the far
side of an internal API.
"""
from __future__ import annotations

from objstore.errors import InternalError, ServiceUnavailable


class NotEnoughShards(ServiceUnavailable):
    """Fewer than K shards of a stripe are available."""

    default_message = "Not enough storage nodes hold this object's shards. Please retry."


class BadShards(InternalError):
    """Shards that cannot belong to one stripe (size or index out of place)."""

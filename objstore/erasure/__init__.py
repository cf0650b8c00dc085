"""Erasure coding (``ec:K+M`` buckets): stripe layout, zfec coding, streaming, policy checks.

Pure: no IO, no clock. The gateway's data path drives these; see each module's
invariants. ``layout`` (where bytes live) does not import zfec; ``codec`` does.
"""
from objstore.erasure.codec import decode_stripe, encode_stripe, split_data
from objstore.erasure.errors import BadShards, NotEnoughShards
from objstore.erasure.layout import DEFAULT_ALIGN, ShardSpan, StripeLayout, StripeRead
from objstore.erasure.policy import check_ec_policy, max_shards_per_zone, survives_zone_loss
from objstore.erasure.stream import (
    StripeEncoder,
    aencode_stream,
    assemble_stripe,
    encode_stream,
    reassemble,
)

__all__ = [
    "DEFAULT_ALIGN",
    "BadShards",
    "NotEnoughShards",
    "ShardSpan",
    "StripeEncoder",
    "StripeLayout",
    "StripeRead",
    "aencode_stream",
    "assemble_stripe",
    "check_ec_policy",
    "decode_stripe",
    "encode_stream",
    "encode_stripe",
    "max_shards_per_zone",
    "reassemble",
    "split_data",
    "survives_zone_loss",
]

"""S3 request authentication: SigV4 verification, aws-chunked bodies, flexible checksums.

Everything here is pure (no IO): the gateway passes request data in and gets an
:class:`AuthContext`, decoded payload pieces and checksums out, or an
``objstore.errors`` exception.
"""
from gateway.auth.checksums import (
    ChecksumSet,
    checksum_header_algorithms,
    expected_checksums,
    make_checksum,
    verify_checksum,
)
from gateway.auth.sigv4 import (
    AuthContext,
    ParsedRequest,
    check_signature,
    parse_request,
    signing_key,
    verify,
    verify_payload_sha256,
)
from gateway.auth.streaming import AwsChunkedDecoder

__all__ = [
    "AuthContext",
    "AwsChunkedDecoder",
    "ChecksumSet",
    "ParsedRequest",
    "check_signature",
    "checksum_header_algorithms",
    "expected_checksums",
    "make_checksum",
    "parse_request",
    "signing_key",
    "verify",
    "verify_checksum",
    "verify_payload_sha256",
]

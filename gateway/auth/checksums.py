"""S3 flexible checksums (``x-amz-checksum-<algorithm>``): compute, find, verify.

Algorithms: ``crc32``, ``crc32c``, ``crc64nvme`` (computed by awscrt's C code),
``sha1`` and ``sha256`` (hashlib). A digest travels as base64 of its big-endian
bytes, exactly as S3 and the AWS SDKs write it.

Invariants: algorithm names are lower-case everywhere in this module's outputs;
an unknown algorithm or a malformed expected value raises InvalidRequest; a
mismatch raises InvalidChecksum (S3 code BadDigest).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from awscrt import checksums as _crt

from objstore.errors import InvalidChecksum, InvalidRequest

#: algorithm -> digest size in bytes
DIGEST_SIZES: dict[str, int] = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}
ALGORITHMS = tuple(DIGEST_SIZES)
HEADER_PREFIX = "x-amz-checksum-"


class Checksum(Protocol):
    algorithm: str

    def update(self, data: bytes) -> None: ...

    def digest(self) -> bytes: ...

    def b64digest(self) -> str: ...


class _Crc:
    __slots__ = ("algorithm", "_fn", "_value", "_size")

    def __init__(self, algorithm: str, fn: Callable[[bytes, int], int], size: int) -> None:
        self.algorithm = algorithm
        self._fn = fn
        self._value = 0
        self._size = size

    def update(self, data: bytes) -> None:
        if data:
            self._value = self._fn(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")

    def b64digest(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


class _Hash:
    __slots__ = ("algorithm", "_h")

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()

    def b64digest(self) -> str:
        return base64.b64encode(self._h.digest()).decode("ascii")


_CRCS: dict[str, Callable[[bytes, int], int]] = {
    "crc32": _crt.crc32, "crc32c": _crt.crc32c, "crc64nvme": _crt.crc64nvme,
}


def normalize_algorithm(name: str) -> str:
    """``"CRC32C"`` / ``"crc32c"`` -> ``"crc32c"``; InvalidRequest if unsupported."""
    alg = name.strip().lower()
    if alg not in DIGEST_SIZES:
        raise InvalidRequest("Checksum algorithm provided is unsupported. Please try again with any "
                             "of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
    return alg


def make_checksum(algorithm: str) -> Checksum:
    """A fresh running checksum for ``algorithm`` (any case)."""
    alg = normalize_algorithm(algorithm)
    if alg in _CRCS:
        return _Crc(alg, _CRCS[alg], DIGEST_SIZES[alg])
    return _Hash(alg)


def compute(algorithm: str, data: bytes) -> str:
    """The base64 checksum of ``data`` in one call."""
    c = make_checksum(algorithm)
    c.update(data)
    return c.b64digest()


def _header_items(headers: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    return ((k.lower(), v) for k, v in headers.items())


def checksum_header_algorithms(headers: Mapping[str, str]) -> list[str]:
    """Algorithms a request asks to be checked, in first-seen order.

    From ``x-amz-checksum-<alg>`` value headers, ``x-amz-sdk-checksum-algorithm``
    and checksum names listed in ``x-amz-trailer``. Raises InvalidRequest for an
    unsupported algorithm.
    """
    found: dict[str, None] = {}
    for name, value in _header_items(headers):
        if name.startswith(HEADER_PREFIX) and name[len(HEADER_PREFIX):] in DIGEST_SIZES:
            found[name[len(HEADER_PREFIX):]] = None
        elif name == "x-amz-sdk-checksum-algorithm" and value.strip():
            found[normalize_algorithm(value)] = None
        elif name == "x-amz-trailer":
            for trailer in value.split(","):
                trailer = trailer.strip().lower()
                if trailer.startswith(HEADER_PREFIX):
                    found[normalize_algorithm(trailer[len(HEADER_PREFIX):])] = None
    return list(found)


def validate_value(algorithm: str, value: str) -> str:
    """Check that ``value`` is a well-formed base64 digest for ``algorithm``; return it."""
    alg = normalize_algorithm(algorithm)
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != DIGEST_SIZES[alg]:
        raise InvalidRequest(f"Value for {HEADER_PREFIX}{alg} header is invalid.")
    return value.strip()


def expected_checksums(headers: Mapping[str, str]) -> dict[str, str]:
    """``x-amz-checksum-<alg>`` headers sent with the request -> {alg: base64 value}, validated."""
    out: dict[str, str] = {}
    for name, value in _header_items(headers):
        if name.startswith(HEADER_PREFIX) and name[len(HEADER_PREFIX):] in DIGEST_SIZES:
            alg = name[len(HEADER_PREFIX):]
            out[alg] = validate_value(alg, value)
    return out


def verify_checksum(algorithm: str, expected_b64: str, actual_b64: str) -> None:
    """Raise InvalidChecksum (BadDigest) unless the two base64 digests are equal."""
    alg = normalize_algorithm(algorithm)
    if expected_b64.strip() != actual_b64:
        raise InvalidChecksum(f"The {alg.upper()} you specified did not match the calculated checksum.")


class ChecksumSet:
    """Several running checksums fed the same bytes (one per requested algorithm)."""

    def __init__(self, algorithms: Iterable[str]) -> None:
        self.checksums: dict[str, Checksum] = {}
        for alg in algorithms:
            alg = normalize_algorithm(alg)
            self.checksums.setdefault(alg, make_checksum(alg))

    def update(self, data: bytes) -> None:
        for c in self.checksums.values():
            c.update(data)

    def b64digests(self) -> dict[str, str]:
        return {alg: c.b64digest() for alg, c in self.checksums.items()}

    def verify(self, expected: Mapping[str, str]) -> dict[str, str]:
        """Check every algorithm against ``expected`` ({alg: base64}); return the digests.

        An algorithm being computed with no expected value raises InvalidRequest
        (a checksum declared, e.g. in x-amz-trailer, but never sent).
        """
        digests = self.b64digests()
        for alg, got in digests.items():
            want = expected.get(alg)
            if want is None:
                raise InvalidRequest(f"The {HEADER_PREFIX}{alg} value was declared but not sent.")
            verify_checksum(alg, validate_value(alg, want), got)
        return digests

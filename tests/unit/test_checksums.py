"""Flexible checksums: published check values, bit-by-bit reference CRCs, botocore parity."""
from __future__ import annotations

import base64
import hashlib
import zlib

import pytest
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.auth import checksums
from gateway.auth.checksums import (
    ChecksumSet,
    checksum_header_algorithms,
    compute,
    expected_checksums,
    make_checksum,
    verify_checksum,
)
from objstore.errors import InvalidChecksum, InvalidRequest


def _reflected_crc(data: bytes, poly: int, width: int) -> int:
    """Bit-at-a-time reflected CRC with all-ones init and final xor (the textbook definition)."""
    mask = (1 << width) - 1
    crc = mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return crc ^ mask


def ref_crc32c(data: bytes) -> int:
    return _reflected_crc(data, 0x82F63B78, 32)


def ref_crc64nvme(data: bytes) -> int:
    return _reflected_crc(data, 0x9A6C9329AC4BC9B5, 64)


def b64int(value: int, size: int) -> str:
    return base64.b64encode(value.to_bytes(size, "big")).decode()


CHECK = b"123456789"


@pytest.mark.parametrize("alg,expected", [
    # The "check" values of the CRC catalogue (CRC-32/ISO-HDLC, CRC-32/ISCSI, CRC-64/NVME).
    ("crc32", b64int(0xCBF43926, 4)),
    ("crc32c", b64int(0xE3069283, 4)),
    ("crc64nvme", b64int(0xAE8B14860A799888, 8)),
    ("sha1", base64.b64encode(bytes.fromhex("f7c3bc1d808e04732adf679965ccc34ca7ae3441")).decode()),
    ("sha256", base64.b64encode(bytes.fromhex(
        "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225")).decode()),
])
def test_published_check_values(alg: str, expected: str) -> None:
    assert compute(alg, CHECK) == expected
    assert compute(alg.upper(), CHECK) == expected


def test_reference_implementations_agree_with_catalogue() -> None:
    assert ref_crc32c(CHECK) == 0xE3069283
    assert ref_crc64nvme(CHECK) == 0xAE8B14860A799888
    assert _reflected_crc(CHECK, 0xEDB88320, 32) == 0xCBF43926


def test_hello_world_values() -> None:
    assert compute("crc32", b"hello world") == "DUoRhQ=="
    assert compute("crc32", b"hello world") == b64int(zlib.crc32(b"hello world"), 4)
    assert compute("crc32c", b"hello world") == b64int(ref_crc32c(b"hello world"), 4)
    assert compute("crc64nvme", b"hello world") == b64int(ref_crc64nvme(b"hello world"), 8)
    assert compute("sha256", b"") == base64.b64encode(hashlib.sha256(b"").digest()).decode()
    # Empty input: CRCs of nothing are zero.
    assert compute("crc32", b"") == "AAAAAA=="
    assert compute("crc64nvme", b"") == "AAAAAAAAAAA="


BOTOCORE = {"crc32": Crc32Checksum, "crc32c": CrtCrc32cChecksum, "crc64nvme": CrtCrc64NvmeChecksum,
            "sha1": Sha1Checksum, "sha256": Sha256Checksum}


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=6),
       alg=st.sampled_from(sorted(BOTOCORE)))
def test_incremental_matches_botocore_and_reference(data: bytes, cuts: list[int], alg: str) -> None:
    c = make_checksum(alg)
    start = 0
    for cut in sorted(set(min(x, len(data)) for x in cuts)) + [len(data)]:
        c.update(data[start:cut])
        start = max(start, cut)
    theirs = BOTOCORE[alg]()
    theirs.update(data)
    assert c.b64digest() == theirs.b64digest()
    assert c.algorithm == alg
    if alg == "crc32c" and len(data) <= 300:
        assert c.digest() == ref_crc32c(data).to_bytes(4, "big")
    if alg == "crc64nvme" and len(data) <= 300:
        assert c.digest() == ref_crc64nvme(data).to_bytes(8, "big")


def test_unknown_algorithm() -> None:
    with pytest.raises(InvalidRequest, match="unsupported"):
        make_checksum("md5")
    with pytest.raises(InvalidRequest):
        checksum_header_algorithms({"x-amz-sdk-checksum-algorithm": "XXHASH9"})


def test_checksum_header_algorithms() -> None:
    headers = CIMultiDict([
        ("X-Amz-Checksum-CRC32C", "yZRlqg=="),
        ("x-amz-checksum-type", "FULL_OBJECT"),  # not an algorithm
        ("X-Amz-SDK-Checksum-Algorithm", "SHA256"),
        ("X-Amz-Trailer", "x-amz-checksum-crc64nvme, x-amz-meta-other"),
        ("Content-Type", "text/plain"),
    ])
    assert checksum_header_algorithms(headers) == ["crc32c", "sha256", "crc64nvme"]
    assert checksum_header_algorithms({}) == []
    # The SDK header and the value header naming the same algorithm count once.
    assert checksum_header_algorithms({"x-amz-checksum-crc32": "DUoRhQ==",
                                       "x-amz-sdk-checksum-algorithm": "CRC32"}) == ["crc32"]


def test_expected_checksums_validates_values() -> None:
    assert expected_checksums({"X-Amz-Checksum-Crc32": " DUoRhQ== ", "x-amz-checksum-type": "COMPOSITE"}) == {
        "crc32": "DUoRhQ=="}
    with pytest.raises(InvalidRequest, match="x-amz-checksum-crc32 header is invalid"):
        expected_checksums({"x-amz-checksum-crc32": "not base64!"})
    with pytest.raises(InvalidRequest, match="crc64nvme"):
        expected_checksums({"x-amz-checksum-crc64nvme": "DUoRhQ=="})  # 4 bytes, needs 8


def test_verify_checksum() -> None:
    verify_checksum("CRC32", "DUoRhQ==", compute("crc32", b"hello world"))
    with pytest.raises(InvalidChecksum) as err:
        verify_checksum("crc32", "AAAAAA==", compute("crc32", b"hello world"))
    assert err.value.code == "BadDigest" and err.value.status == 400
    assert "CRC32" in err.value.message


def test_checksum_set() -> None:
    cs = ChecksumSet(["CRC32", "sha256", "crc32"])
    assert list(cs.checksums) == ["crc32", "sha256"]
    for piece in (b"hello", b" ", b"world"):
        cs.update(piece)
    want = {"crc32": compute("crc32", b"hello world"), "sha256": compute("sha256", b"hello world")}
    assert cs.verify(want) == want
    with pytest.raises(InvalidChecksum):
        cs.verify({**want, "sha256": compute("sha256", b"other")})
    with pytest.raises(InvalidRequest, match="declared but not sent"):
        cs.verify({"crc32": want["crc32"]})


def test_crcs_are_computed_by_native_code() -> None:
    for alg in ("crc32", "crc32c", "crc64nvme"):
        # awscrt's thin wrappers over its C extension, not a Python loop per byte
        assert checksums._CRCS[alg].__module__ == "awscrt.checksums", alg

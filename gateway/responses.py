"""Pieces of S3's response documents that several operations share: the XML content type,
owner elements, checksum element names and the settings block of v1-style listing pages."""
from __future__ import annotations

from gateway.endpoints import ListingScope
from gateway.xml import el

XML = {"Content-Type": "application/xml"}

# The XML element of each flexible checksum algorithm (CopyObjectResult, CopyPartResult,
# CompleteMultipartUploadResult, ListPartsResult, CompleteMultipartUpload bodies).
CHECKSUM_ELEMENTS = {"crc32": "ChecksumCRC32", "crc32c": "ChecksumCRC32C", "crc64nvme": "ChecksumCRC64NVME",
                     "sha1": "ChecksumSHA1", "sha256": "ChecksumSHA256"}


def owner_element(owner: str, tag: str = "Owner") -> str:
    """``<Owner>`` (or ``<Initiator>``) with the owner id as both ID and DisplayName."""
    return f"<{tag}>" + el("ID", owner) + el("DisplayName", owner) + f"</{tag}>"


def checksum_elements(checksums: dict[str, str]) -> list[str]:
    """One element per checksum S3 has an element for, in the order given."""
    return [el(CHECKSUM_ELEMENTS[a], v) for a, v in checksums.items() if a in CHECKSUM_ELEMENTS]


def page_settings(max_keys: int, scope: ListingScope, truncated: bool) -> list[str]:
    """MaxKeys, Delimiter, EncodingType and IsTruncated, in the order S3's v1 listings use."""
    out = [el("MaxKeys", max_keys)]
    if scope.delimiter:
        out.append(el("Delimiter", scope.encode(scope.delimiter)))
    if scope.encoding_type:
        out.append(el("EncodingType", scope.encoding_type))
    out.append(el("IsTruncated", truncated))
    return out

"""aws-chunked decoding: AWS's worked example, botocore's encoder, signed chunks and trailers.

Bodies are produced by botocore's own ``AwsChunkedWrapper`` (unsigned, trailing
checksum), by a captured boto3 ``put_object``, and, for the signed forms, by an
encoder written here from the AWS documentation with its own HMAC code. They are
fed to the decoder in arbitrary splits.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import random

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, CrtCrc32cChecksum, CrtCrc64NvmeChecksum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.auth import checksums
from gateway.auth.sigv4 import AuthContext
from gateway.auth.streaming import MAX_LINE, AwsChunkedDecoder
from objstore.errors import IncompleteBody, InvalidRequest, SignatureDoesNotMatch
from tests.unit.test_sigv4 import capture_client, reference_signing_key, verify_captured

EMPTY = hashlib.sha256(b"").hexdigest()
DATE = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"
KEY = reference_signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1")
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"


def ctx_for(mode: str, seed: str = SEED) -> AuthContext:
    return AuthContext(access_key="AKIAIOSFODNN7EXAMPLE", signing_key=KEY, scope=SCOPE, amz_date=DATE,
                       seed_signature=seed, payload_mode=mode, content_sha256=None, presigned=False)


def _hmac(msg: str) -> str:
    return hmac.new(KEY, msg.encode(), hashlib.sha256).hexdigest()


def encode_signed(chunks: list[bytes], seed: str = SEED, trailers: list[tuple[str, str]] | None = None) -> bytes:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] as the AWS docs describe it."""
    out = bytearray()
    prev = seed
    for data in [*chunks, b""]:
        sig = _hmac("\n".join(["AWS4-HMAC-SHA256-PAYLOAD", DATE, SCOPE, prev, EMPTY,
                               hashlib.sha256(data).hexdigest()]))
        out += f"{len(data):x};chunk-signature={sig}\r\n".encode()
        if data:
            out += data + b"\r\n"
        prev = sig
    if trailers is not None:
        block = "".join(f"{k}:{v}\n" for k, v in trailers)
        for k, v in trailers:
            out += f"{k}:{v}\r\n".encode()
        tsig = _hmac("\n".join(["AWS4-HMAC-SHA256-TRAILER", DATE, SCOPE, prev,
                                hashlib.sha256(block.encode()).hexdigest()]))
        out += f"x-amz-trailer-signature:{tsig}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def encode_botocore(payload: bytes, checksum_cls=Crc32Checksum, name: str = "x-amz-checksum-crc32",
                    chunk_size: int = 1024) -> bytes:
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER exactly as botocore writes it."""
    return AwsChunkedWrapper(io.BytesIO(payload), checksum_cls=checksum_cls, checksum_name=name,
                             chunk_size=chunk_size).read()


def decode(body: bytes, decoder: AwsChunkedDecoder, splits: list[int] | None = None) -> tuple[bytes, dict]:
    out = bytearray()
    cuts = sorted(set(splits or []))
    start = 0
    for cut in [*cuts, len(body)]:
        if cut > start:
            for piece in decoder.feed(body[start:cut]):
                out += piece
            start = cut
    return bytes(out), decoder.finish()


# --- the AWS documentation's chunked upload example -----------------------------------------

DOC_CHUNK_SIGS = ["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                  "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                  "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"]


def doc_body() -> bytes:
    return (f"10000;chunk-signature={DOC_CHUNK_SIGS[0]}\r\n".encode() + b"a" * 65536 + b"\r\n"
            + f"400;chunk-signature={DOC_CHUNK_SIGS[1]}\r\n".encode() + b"a" * 1024 + b"\r\n"
            + f"0;chunk-signature={DOC_CHUNK_SIGS[2]}\r\n\r\n".encode())


def test_aws_doc_chunked_example() -> None:
    body = doc_body()
    assert len(body) == 66824  # the example's Content-Length
    assert encode_signed([b"a" * 65536, b"a" * 1024]) == body
    decoder = AwsChunkedDecoder(ctx_for("streaming-signed"), "streaming-signed", [], decoded_length=66560)
    payload, trailers = decode(body, decoder, [1, 100, 5000, 65600, 66000])
    assert payload == b"a" * 66560 and trailers == {} and decoder.done
    assert decoder.decoded_bytes == 66560


def test_aws_doc_chunked_example_tampered() -> None:
    body = bytearray(doc_body())
    body[200] = ord("b")  # one byte of the first chunk's data
    with pytest.raises(SignatureDoesNotMatch):
        decode(bytes(body), AwsChunkedDecoder(ctx_for("streaming-signed"), "streaming-signed"))
    wrong_seed = AwsChunkedDecoder(ctx_for("streaming-signed", seed="0" * 64), "streaming-signed")
    with pytest.raises(SignatureDoesNotMatch):
        decode(doc_body(), wrong_seed)


# --- botocore's unsigned-trailer encoder ----------------------------------------------------

@pytest.mark.parametrize("cls,alg", [(Crc32Checksum, "crc32"), (CrtCrc32cChecksum, "crc32c"),
                                     (CrtCrc64NvmeChecksum, "crc64nvme")])
def test_botocore_unsigned_trailer_body(cls, alg: str) -> None:
    payload = random.Random(7).randbytes(10_000)
    name = f"x-amz-checksum-{alg}"
    body = encode_botocore(payload, cls, name, chunk_size=3000)
    decoder = AwsChunkedDecoder(None, "streaming-unsigned-trailer", [name], decoded_length=len(payload))
    got, trailers = decode(body, decoder, [5, 3010, 3011, 9000])
    assert got == payload
    assert trailers == {name: checksums.compute(alg, payload)}


def test_boto3_put_object_streams_unsigned_trailer() -> None:
    client, sent = capture_client()
    payload = random.Random(1).randbytes(3 * 1024 * 1024 + 17)
    client.put_object(Bucket="bkt", Key="big.bin", Body=payload, ChecksumAlgorithm="CRC32C")
    [c] = sent
    ctx = verify_captured(c)
    assert ctx.payload_mode == "streaming-unsigned-trailer"
    h = CIMultiDict(c.headers)
    assert h["Content-Encoding"] == "aws-chunked"
    trailer_names = [t.strip() for t in h["X-Amz-Trailer"].split(",")]
    decoder = AwsChunkedDecoder(ctx, ctx.payload_mode, trailer_names,
                                decoded_length=int(h["X-Amz-Decoded-Content-Length"]))
    cs = checksums.ChecksumSet(checksums.checksum_header_algorithms(h))
    out = bytearray()
    for i in range(0, len(c.body), 65536):  # as aiohttp would hand it over
        for piece in decoder.feed(c.body[i:i + 65536]):
            cs.update(piece)
            out += piece
    trailers = decoder.finish()
    assert bytes(out) == payload
    assert cs.verify({"crc32c": trailers["x-amz-checksum-crc32c"]}) == {
        "crc32c": checksums.compute("crc32c", payload)}


# --- random splits (hypothesis) -------------------------------------------------------------

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.binary(max_size=5000), chunk=st.integers(1, 1500), data=st.data(),
       mode=st.sampled_from(["streaming-signed", "streaming-signed-trailer", "streaming-unsigned-trailer"]))
def test_random_splits_decode_exactly(payload: bytes, chunk: int, data, mode: str) -> None:
    chunks = [payload[i:i + chunk] for i in range(0, len(payload), chunk)]
    crc = checksums.compute("crc32", payload)
    if mode == "streaming-unsigned-trailer":
        body = encode_botocore(payload, Crc32Checksum, "x-amz-checksum-crc32", chunk)
    else:
        trailers = [("x-amz-checksum-crc32", crc)] if mode.endswith("trailer") else None
        body = encode_signed(chunks, trailers=trailers)
    names = [] if mode == "streaming-signed" else ["x-amz-checksum-crc32"]
    splits = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    decoder = AwsChunkedDecoder(ctx_for(mode), mode, names, decoded_length=len(payload))
    got, trailers = decode(body, decoder, splits)
    assert got == payload
    assert trailers == ({} if mode == "streaming-signed" else {"x-amz-checksum-crc32": crc})


@settings(max_examples=80, deadline=None)
@given(payload=st.binary(min_size=1, max_size=3000), cut=st.integers(0, 10_000),
       mode=st.sampled_from(["streaming-signed", "streaming-signed-trailer", "streaming-unsigned-trailer"]))
def test_truncated_body_never_passes(payload: bytes, cut: int, mode: str) -> None:
    if mode == "streaming-unsigned-trailer":
        body = encode_botocore(payload, chunk_size=700)
    else:
        body = encode_signed([payload[i:i + 700] for i in range(0, len(payload), 700)],
                             trailers=[("x-amz-checksum-crc32", checksums.compute("crc32", payload))]
                             if mode.endswith("trailer") else None)
    cut = cut % len(body)
    # Dropping only the very last CRLF is tolerated; any other truncation is an error.
    decoder = AwsChunkedDecoder(ctx_for(mode), mode, [] if mode == "streaming-signed" else
                                ["x-amz-checksum-crc32"], decoded_length=len(payload))
    decoder.feed(body[:cut])
    if cut == len(body) - 2:
        assert decoder.finish() is not None
    else:
        with pytest.raises((IncompleteBody, SignatureDoesNotMatch, InvalidRequest)):
            decoder.finish()


# --- tampering and framing errors -----------------------------------------------------------

def _signed_trailer_body() -> tuple[bytes, bytes]:
    payload = b"0123456789" * 1000
    body = encode_signed([payload[:4000], payload[4000:8000], payload[8000:]],
                         trailers=[("x-amz-checksum-crc32", checksums.compute("crc32", payload))])
    return payload, body


def _decoder(mode: str = "streaming-signed-trailer", names=("x-amz-checksum-crc32",), length=None):
    return AwsChunkedDecoder(ctx_for(mode), mode, list(names), decoded_length=length)


def test_signed_trailer_body_decodes() -> None:
    payload, body = _signed_trailer_body()
    got, trailers = decode(body, _decoder(length=len(payload)))
    assert got == payload and list(trailers) == ["x-amz-checksum-crc32"]


@pytest.mark.parametrize("tamper,error", [
    (lambda b: b.replace(b"0123456789", b"0123456780", 1), SignatureDoesNotMatch),  # chunk data
    (lambda b: b.replace(b"chunk-signature=", b"chunk-signature=0", 1), SignatureDoesNotMatch),
    (lambda b: b.replace(b"x-amz-checksum-crc32:", b"x-amz-checksum-crc32:A", 1), SignatureDoesNotMatch),
    (lambda b: b.replace(b"x-amz-trailer-signature:", b"x-amz-trailer-signature:f", 1), SignatureDoesNotMatch),
    (lambda b: b.replace(b";chunk-signature=", b";chunk-signatur=", 1), SignatureDoesNotMatch),
    (lambda b: b.replace(b"fa0;", b"fa1;", 1), InvalidRequest),  # size disagrees with data
    (lambda b: b.replace(b"fa0;", b"fz0;", 1), InvalidRequest),  # not hex
    (lambda b: b + b"extra", InvalidRequest),
], ids=["data", "chunk-signature", "trailer-value", "trailer-signature", "signature-missing",
        "size", "size-not-hex", "data-after-end"])
def test_tampered_signed_body_is_rejected(tamper, error) -> None:
    _, body = _signed_trailer_body()
    tampered = tamper(body)
    assert tampered != body
    with pytest.raises(error):
        decode(tampered, _decoder())


def test_chunks_swapped_are_rejected() -> None:
    a, b = b"A" * 100, b"B" * 100
    body_ab = encode_signed([a, b])
    body_ba = encode_signed([b, a])
    # Reuse the first body's signatures with the second body's data order.
    first_sig = body_ab.split(b"\r\n", 1)[0]
    forged = first_sig + b"\r\n" + body_ba.split(b"\r\n", 1)[1]
    with pytest.raises(SignatureDoesNotMatch):
        decode(forged, _decoder("streaming-signed", ()))


def test_trailer_rules() -> None:
    payload = b"xyz"
    crc = checksums.compute("crc32", payload)
    undeclared = encode_signed([payload], trailers=[("x-amz-checksum-crc32", crc)])
    with pytest.raises(InvalidRequest, match="not declared"):
        decode(undeclared, _decoder(names=()))
    missing = encode_signed([payload], trailers=[])
    with pytest.raises(InvalidRequest, match="not sent"):
        decode(missing, _decoder())
    unsigned = encode_botocore(payload)
    with pytest.raises(SignatureDoesNotMatch):  # signed-trailer mode needs signed chunks
        decode(unsigned, _decoder())
    no_trailer_sig = encode_signed([payload], trailers=[("x-amz-checksum-crc32", crc)])
    no_trailer_sig = no_trailer_sig[:no_trailer_sig.index(b"x-amz-trailer-signature")] + b"\r\n"
    with pytest.raises(SignatureDoesNotMatch, match="not signed"):
        decode(no_trailer_sig, _decoder())
    trailers_in_plain_signed = encode_signed([payload], trailers=[("x-amz-checksum-crc32", crc)])
    with pytest.raises(InvalidRequest):
        decode(trailers_in_plain_signed, _decoder("streaming-signed", ["x-amz-checksum-crc32"]))


def test_decoded_length_is_enforced() -> None:
    payload = b"q" * 5000
    body = encode_botocore(payload, chunk_size=1000)
    with pytest.raises(IncompleteBody, match="shorter"):
        decode(body, AwsChunkedDecoder(None, "streaming-unsigned-trailer", ["x-amz-checksum-crc32"],
                                       decoded_length=5001))
    decoder = AwsChunkedDecoder(None, "streaming-unsigned-trailer", ["x-amz-checksum-crc32"],
                                decoded_length=4999)
    with pytest.raises(IncompleteBody, match="longer"):
        decoder.feed(body)
    with pytest.raises(InvalidRequest):  # the decoder stays failed
        decoder.feed(b"more")


def test_bad_framing() -> None:
    d = AwsChunkedDecoder(None, "streaming-unsigned-trailer")
    with pytest.raises(InvalidRequest, match="too long"):
        d.feed(b"1" * (MAX_LINE + 1))
    d = AwsChunkedDecoder(None, "streaming-unsigned-trailer")
    with pytest.raises(InvalidRequest, match="chunk size"):
        d.feed(b"\r\n")
    d = AwsChunkedDecoder(None, "streaming-unsigned-trailer")
    with pytest.raises(InvalidRequest, match="chunk size"):
        d.feed(b"11111111111111111\r\n")  # more than 16 hex digits
    d = AwsChunkedDecoder(None, "streaming-unsigned-trailer", ["x-amz-checksum-crc32"])
    d.feed(b"0\r\n")
    with pytest.raises(InvalidRequest, match="trailer line"):
        d.feed(b"no-colon-here\r\n\r\n")
    d = AwsChunkedDecoder(None, "streaming-unsigned-trailer")
    with pytest.raises(InvalidRequest, match="too large"):
        d.feed(b"0\r\n" + b"x-amz-meta-x:" + b"v" * 20000 + b"\r\n")
    d = AwsChunkedDecoder(None, "streaming-unsigned-trailer")
    d.feed(b"3\r\nab")
    with pytest.raises(IncompleteBody):
        d.finish()
    with pytest.raises(ValueError):
        AwsChunkedDecoder(None, "streaming-signed")


def test_large_chunk_streams_without_buffering() -> None:
    size = 8 * 1024 * 1024
    payload = random.Random(3).randbytes(size)
    body = encode_signed([payload])
    decoder = _decoder("streaming-signed", ())
    header_end = body.index(b"\r\n") + 2
    first = decoder.feed(body[:header_end + 65536])
    assert b"".join(first) == payload[:65536]  # handed out at once, not held until the chunk ends
    out = [*first]
    for i in range(header_end + 65536, len(body), 1 << 20):
        pieces = decoder.feed(body[i:i + (1 << 20)])
        out.extend(pieces)
    assert decoder.finish() == {}
    assert b"".join(out) == payload


def test_a_16_mib_signed_body_decodes_from_256_kib_reads() -> None:
    payload = random.Random(4).randbytes(16 * 1024 * 1024)
    body = encode_signed([payload[i:i + 65536] for i in range(0, len(payload), 65536)])
    decoder = _decoder("streaming-signed", ())
    out = []
    for i in range(0, len(body), 256 * 1024):
        out.extend(decoder.feed(body[i:i + 256 * 1024]))
    decoder.finish()
    assert b"".join(out) == payload

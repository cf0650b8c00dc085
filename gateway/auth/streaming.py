"""Sans-IO decoder for ``Content-Encoding: aws-chunked`` request bodies.

Wire format (after any HTTP transfer decoding)::

    <hex-size>[;chunk-signature=<sig>]\\r\\n <size bytes> \\r\\n     (repeated)
    0[;chunk-signature=<sig>]\\r\\n                                  (final chunk)
    [<name>:<value>\\r\\n ...]                                       (trailers, if any)
    [x-amz-trailer-signature:<sig>\\r\\n]                            (signed trailers)
    \\r\\n

Modes (``AuthContext.payload_mode``): ``streaming-signed`` (every chunk signed,
no trailers), ``streaming-signed-trailer`` (signed chunks and signed trailers),
``streaming-unsigned-trailer`` (no signatures at all; trailers usually carry a
checksum). Chunk signatures chain from the request's seed signature:
``HMAC(key, "AWS4-HMAC-SHA256-PAYLOAD\\n" date \\n scope \\n prev \\n sha256("") \\n sha256(chunk))``;
the trailer signature is ``HMAC(key, "AWS4-HMAC-SHA256-TRAILER\\n" date \\n scope \\n
prev \\n sha256(trailer lines joined as "name:value\\n"))``.

Invariants:
* Memory is bounded: chunk data is never buffered; only a chunk header line
  (at most MAX_LINE bytes) or the trailer section (at most MAX_TRAILER bytes).
* Payload bytes are returned by :meth:`feed` as they arrive, before the chunk
  they belong to has been checked (its signature is checked when its last byte
  and CRLF arrive). They are therefore provisional: a consumer must not commit
  anything until :meth:`finish` has returned; any exception means the whole body
  is rejected.
* Errors: bad signatures raise SignatureDoesNotMatch; broken framing raises
  InvalidRequest; a body that ends early or disagrees with the declared decoded
  length raises IncompleteBody. After an error the decoder is unusable.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from gateway.auth.sigv4 import EMPTY_SHA256, AuthContext
from objstore.errors import IncompleteBody, InvalidRequest, SignatureDoesNotMatch

MAX_LINE = 4096  # longest chunk header line accepted
MAX_TRAILER = 16 * 1024  # largest trailer section accepted
SIGNED_MODES = ("streaming-signed", "streaming-signed-trailer")
MODES = (*SIGNED_MODES, "streaming-unsigned-trailer")
TRAILER_SIGNATURE = "x-amz-trailer-signature"
_HEXDIGITS = frozenset(b"0123456789abcdefABCDEF")

_HEADER, _DATA, _DATA_CRLF, _TRAILER, _DONE, _FAILED = range(6)


class AwsChunkedDecoder:
    """Feed raw aws-chunked bytes in, get payload pieces out; trailers at the end."""

    def __init__(self, ctx: AuthContext | None, mode: str, trailer_names: Sequence[str] = (),
                 decoded_length: int | None = None) -> None:
        """``mode`` is one of MODES; signed modes need ``ctx``. ``trailer_names`` are
        the names declared in ``x-amz-trailer`` (each must arrive, no other may);
        ``decoded_length`` is ``x-amz-decoded-content-length`` when the client sent it."""
        if mode not in MODES:
            # "unsigned"/"signed" payloads with aws-chunked encoding: framing only.
            mode = "streaming-unsigned-trailer"
        self.mode = mode
        self._signed = mode in SIGNED_MODES
        if self._signed:
            if ctx is None:
                raise ValueError(f"mode {mode!r} needs an AuthContext")
            self._key = ctx.signing_key
            self._chunk_prefix = f"AWS4-HMAC-SHA256-PAYLOAD\n{ctx.amz_date}\n{ctx.scope}\n".encode()
            self._trailer_prefix = f"AWS4-HMAC-SHA256-TRAILER\n{ctx.amz_date}\n{ctx.scope}\n".encode()
            self._prev_sig = ctx.seed_signature.encode("ascii")
        self._declared = {n.strip().lower() for n in trailer_names if n.strip()}
        self._decoded_length = decoded_length
        self._state = _HEADER
        self._buf = bytearray()
        self._remaining = 0
        self._chunk_sig: bytes | None = None
        self._hasher = hashlib.sha256() if self._signed else None
        self._trailer_lines: list[bytes] = []
        self._trailer_bytes = 0
        self.trailers: dict[str, str] = {}
        self.decoded_bytes = 0

    @property
    def done(self) -> bool:
        """True once the terminating empty line has been read and checked."""
        return self._state == _DONE

    # --- public API -----------------------------------------------------------------------

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data``; return the payload bytes it completed (possibly none)."""
        if self._state == _FAILED:
            raise InvalidRequest("The aws-chunked body was already rejected.")
        try:
            return self._feed(data)
        except Exception:
            self._state = _FAILED
            raise

    def finish(self) -> dict[str, str]:
        """Declare the end of the body; return the trailers (lower-case names).

        Raises IncompleteBody if the body stopped before its final chunk (or in the
        middle of a line), or if its decoded size differs from the declared one.
        """
        if self._state == _FAILED:
            raise InvalidRequest("The aws-chunked body was already rejected.")
        if self._state == _TRAILER and not self._buf:
            # Tolerate a body whose final empty line is missing.
            self._state = _FAILED
            self._end_of_trailers()
        if self._state != _DONE:
            self._state = _FAILED
            raise IncompleteBody("The aws-chunked body ended before its final chunk.")
        return dict(self.trailers)

    # --- state machine --------------------------------------------------------------------

    def _feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        n = len(data)
        pos = 0
        while pos < n:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, n - pos)
                piece = data if (take == n and pos == 0) else data[pos:pos + take]
                if self._hasher is not None:
                    self._hasher.update(piece)
                out.append(piece)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _DATA_CRLF
            elif state == _DATA_CRLF:
                need = 2 - len(self._buf)
                self._buf += data[pos:pos + need]
                pos += min(need, n - pos)
                if len(self._buf) == 2:
                    if self._buf != b"\r\n":
                        raise InvalidRequest("Malformed aws-chunked body: chunk data is not "
                                             "followed by CRLF (chunk size wrong?).")
                    self._buf.clear()
                    self._end_chunk()
                    self._state = _HEADER
            elif state in (_HEADER, _TRAILER):
                nl = data.find(b"\n", pos)
                end = n if nl < 0 else nl + 1
                self._buf += data[pos:end]
                pos = end
                limit = MAX_LINE if state == _HEADER else MAX_TRAILER - self._trailer_bytes
                if len(self._buf) > limit:
                    what = "line too long" if state == _HEADER else "trailer section too large"
                    raise InvalidRequest(f"Malformed aws-chunked body: {what}.")
                if nl >= 0:
                    line = bytes(self._buf[:-2] if self._buf.endswith(b"\r\n") else self._buf[:-1])
                    self._buf.clear()
                    if state == _HEADER:
                        self._chunk_header(line)
                    else:
                        self._trailer_line(line)
            else:  # _DONE
                raise InvalidRequest("Malformed aws-chunked body: data after the final chunk.")
        return out

    def _chunk_header(self, line: bytes) -> None:
        size_part, _, ext = line.partition(b";")
        size_part = size_part.strip()
        if not size_part or len(size_part) > 16 or not set(size_part) <= _HEXDIGITS:
            raise InvalidRequest(f"Malformed aws-chunked body: bad chunk size {size_part[:32]!r}.")
        size = int(size_part, 16)
        self._chunk_sig = None
        for item in ext.split(b";"):
            name, _, value = item.partition(b"=")
            if name.strip() == b"chunk-signature":
                self._chunk_sig = value.strip().lower()
        if self._signed and self._chunk_sig is None:
            raise SignatureDoesNotMatch("A chunk of the aws-chunked body has no chunk-signature.")
        if self._decoded_length is not None and self.decoded_bytes + size > self._decoded_length:
            raise IncompleteBody("The aws-chunked body is longer than x-amz-decoded-content-length.")
        self.decoded_bytes += size
        if size == 0:
            self._end_chunk()
            self._state = _TRAILER
        else:
            self._remaining = size
            self._state = _DATA

    def _end_chunk(self) -> None:
        if not self._signed:
            return
        assert self._hasher is not None and self._chunk_sig is not None
        digest = self._hasher.hexdigest().encode("ascii")
        self._hasher = hashlib.sha256()
        msg = b"%s%s\n%s\n%s" % (self._chunk_prefix, self._prev_sig, EMPTY_SHA256.encode(), digest)
        expected = hmac.new(self._key, msg, hashlib.sha256).hexdigest().encode("ascii")
        if not hmac.compare_digest(expected, self._chunk_sig):
            raise SignatureDoesNotMatch("The chunk signature of the aws-chunked body does not match.")
        self._prev_sig = expected

    def _trailer_line(self, line: bytes) -> None:
        if not line:
            self._end_of_trailers()
            return
        self._trailer_bytes += len(line) + 2
        if self._trailer_bytes > MAX_TRAILER or len(self._trailer_lines) >= 64:
            raise InvalidRequest("Malformed aws-chunked body: trailer section too large.")
        self._trailer_lines.append(line)

    def _end_of_trailers(self) -> None:
        trailers: dict[str, str] = {}
        signed_lines: list[bytes] = []
        signature: bytes | None = None
        for line in self._trailer_lines:
            name_b, sep, value_b = line.partition(b":")
            name = name_b.strip().decode("latin-1").lower()
            if not sep or not name:
                raise InvalidRequest(f"Malformed aws-chunked trailer line {line[:64]!r}.")
            if signature is not None:
                raise InvalidRequest("Malformed aws-chunked body: trailer after the trailer signature.")
            if name == TRAILER_SIGNATURE:
                signature = value_b.strip().lower()
                continue
            trailers[name] = value_b.strip().decode("utf-8", "replace")
            signed_lines.append(line)
        unexpected = sorted(set(trailers) - self._declared)
        if unexpected:
            raise InvalidRequest(f"The trailer {unexpected[0]} was not declared in x-amz-trailer.")
        missing = sorted(self._declared - set(trailers))
        if missing:
            raise InvalidRequest(f"The trailer {missing[0]} declared in x-amz-trailer was not sent.")
        if self.mode == "streaming-signed-trailer":
            if signature is None:
                if trailers:
                    raise SignatureDoesNotMatch("The trailers of the aws-chunked body are not signed.")
            else:
                self._check_trailer_signature(signed_lines, trailers, signature)
        elif trailers and self.mode == "streaming-signed":
            raise InvalidRequest("Trailers are not allowed with STREAMING-AWS4-HMAC-SHA256-PAYLOAD.")
        if self._decoded_length is not None and self.decoded_bytes != self._decoded_length:
            raise IncompleteBody("The aws-chunked body is shorter than x-amz-decoded-content-length.")
        self.trailers = trailers
        self._state = _DONE

    def _check_trailer_signature(self, lines: list[bytes], trailers: dict[str, str],
                                 signature: bytes) -> None:
        as_sent = b"".join(line + b"\n" for line in lines)
        normalised = "".join(f"{k}:{v}\n" for k, v in trailers.items()).encode("utf-8")
        for block in dict.fromkeys((as_sent, normalised)):
            msg = b"%s%s\n%s" % (self._trailer_prefix, self._prev_sig,
                                 hashlib.sha256(block).hexdigest().encode("ascii"))
            expected = hmac.new(self._key, msg, hashlib.sha256).hexdigest().encode("ascii")
            if hmac.compare_digest(expected, signature):
                return
        raise SignatureDoesNotMatch("The trailer signature of the aws-chunked body does not match.")

"""Reading an HTTP response body as blackbox does: optional decompression (only when `compression` is
set, whatever Content-Encoding says), then `body_size_limit`, counting the bytes that came out."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Protocol


class BodyError(Exception):
    """Reading or decoding the body failed; the message is what upstream logs."""


class _Decoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class _Gzip:
    """Go's gzip.Reader: multistream, so concatenated members are all decoded; garbage after a member
    is an invalid header."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._seen = False

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            self._seen = True
            try:
                out.append(self._z.decompress(data))
            except zlib.error as err:
                raise BodyError(f"gzip: {_zlib_reason(err)}") from None
            if not self._z.eof:
                break
            data = self._z.unused_data
            if data:
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return b"".join(out)

    def finish(self) -> bytes:
        if not self._seen:
            raise BodyError("EOF")
        if not self._z.eof:
            raise BodyError("unexpected EOF")
        return b""


class _Deflate:
    """Go's flate.NewReader: raw DEFLATE (no zlib header); data after the final block is ignored."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(-zlib.MAX_WBITS)

    def feed(self, data: bytes) -> bytes:
        if self._z.eof:
            return b""
        try:
            return self._z.decompress(data)
        except zlib.error as err:
            raise BodyError(f"flate: corrupt input ({_zlib_reason(err)})") from None

    def finish(self) -> bytes:
        if not self._z.eof:
            raise BodyError("unexpected EOF")
        return b""


class _Brotli:
    def __init__(self) -> None:
        import brotli

        self._d = brotli.Decompressor()
        self._error = brotli.error

    def feed(self, data: bytes) -> bytes:
        try:
            out: bytes = self._d.process(data)
        except self._error as err:
            raise BodyError(f"brotli: {err}") from None
        return out

    def finish(self) -> bytes:
        if not self._d.is_finished():
            raise BodyError("unexpected EOF")
        return b""


def _zlib_reason(err: zlib.error) -> str:
    text = str(err)
    return text.split(": ", 1)[1] if ": " in text else text


def decoder_for(algorithm: str) -> _Decoder | None:
    """None for identity/empty; ValueError for an unknown algorithm (a probe failure upstream)."""
    if algorithm == "gzip":
        return _Gzip()
    if algorithm == "deflate":
        return _Deflate()
    if algorithm == "br":
        return _Brotli()
    if algorithm in ("identity", ""):
        return None
    raise ValueError("unsupported compression algorithm")


# The most body kept in memory for regex/CEL matching when no body_size_limit is set. Upstream keeps
# everything; a target streaming gigabytes would take the whole exporter down with it.
MAX_KEPT_BODY = 64 << 20


class BodyReader:
    """Pulls a response body through the decoder and the size limit; `count` is what came out."""

    __slots__ = ("_decoder", "_kept", "_limit", "_stream", "count")

    def __init__(self, stream: AsyncIterator[bytes], decoder: _Decoder | None, limit: int) -> None:
        self._stream = stream
        self._decoder = decoder
        self._limit = limit
        self._kept = 0
        self.count = 0

    async def read_all(self, keep: bool) -> bytes:
        """The whole (decoded) body if `keep`, else b"" after counting it; raises BodyError."""
        chunks: list[bytes] = []
        async for raw in self._stream:
            self._take(self._decoder.feed(raw) if self._decoder is not None else raw, chunks, keep)
        if self._decoder is not None:
            self._take(self._decoder.finish(), chunks, keep)
        return b"".join(chunks)

    def _take(self, data: bytes, chunks: list[bytes], keep: bool) -> None:
        if not data:
            return
        if self._limit and self.count + len(data) > self._limit:
            # http.MaxBytesReader hands out bytes up to the limit, then fails.
            allowed = self._limit - self.count
            self.count = self._limit
            if keep:
                chunks.append(data[:allowed])
            raise BodyError("http: request body too large")
        self.count += len(data)
        if keep:
            self._kept += len(data)
            if self._kept > MAX_KEPT_BODY:
                raise BodyError(f"body larger than {MAX_KEPT_BODY >> 20}MiB to match against: set body_size_limit")
            chunks.append(data)

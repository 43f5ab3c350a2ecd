"""Reading an HTTP response body as blackbox does: optional decompression (only when `compression` is
set, whatever Content-Encoding says), then `body_size_limit`, counting the bytes that came out."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

# Decoders hand out at most this much at a time: a small compressed chunk can stand for gigabytes
# (gzip ~1000:1, brotli far more), so the size limit must be checked before more is decompressed.
PIECE = 1 << 20
# Pieces decoded between two turns of the event loop, so a bomb cannot hold it past the deadline.
_PIECES_PER_TURN = 8


class BodyError(Exception):
    """Reading or decoding the body failed; the message is what upstream logs."""


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def finish(self) -> Iterator[bytes]:
        """What is left once the body ended; BodyError if the stream is incomplete."""


class _Gzip:
    """Go's gzip.Reader: multistream, so concatenated members are all decoded; garbage after a member
    is an invalid header."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._seen = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self._seen = True
        while True:
            try:
                piece = self._z.decompress(data, PIECE)
            except zlib.error as err:
                raise BodyError(f"gzip: {_zlib_reason(err)}") from None
            if piece:
                yield piece
            if self._z.eof:  # the next member, if any
                data = self._z.unused_data
                if not data:
                    return
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                continue
            data = self._z.unconsumed_tail
            if not data and len(piece) < PIECE:
                return

    def finish(self) -> Iterator[bytes]:
        if not self._seen:
            raise BodyError("EOF")
        if not self._z.eof:
            raise BodyError("unexpected EOF")
        yield from ()


class _Deflate:
    """Go's flate.NewReader: raw DEFLATE (no zlib header); data after the final block is ignored."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(-zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while not self._z.eof:
            try:
                piece = self._z.decompress(data, PIECE)
            except zlib.error as err:
                raise BodyError(f"flate: corrupt input ({_zlib_reason(err)})") from None
            if piece:
                yield piece
            data = self._z.unconsumed_tail
            if not data and len(piece) < PIECE:
                return

    def finish(self) -> Iterator[bytes]:
        if not self._z.eof:
            raise BodyError("unexpected EOF")
        yield from ()


# brotli's output buffer grows in steps and may pass its limit by up to ~2x: ask for half a piece.
_BROTLI_LIMIT = PIECE // 2


class _Brotli:
    def __init__(self) -> None:
        import brotli

        self._d = brotli.Decompressor()
        self._error = brotli.error

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            piece: bytes = self._d.process(data, output_buffer_limit=_BROTLI_LIMIT)
            yield piece
            # A full piece means more output may be waiting: drain it (with no input, as brotli requires).
            while len(piece) >= _BROTLI_LIMIT or not self._d.can_accept_more_data():
                piece = self._d.process(b"", output_buffer_limit=_BROTLI_LIMIT)
                if not piece and self._d.can_accept_more_data():
                    return
                yield piece
        except self._error as err:
            raise BodyError(f"brotli: {err}") from None

    def finish(self) -> Iterator[bytes]:
        while not self._d.is_finished():
            try:
                piece: bytes = self._d.process(b"", output_buffer_limit=_BROTLI_LIMIT)
            except self._error as err:
                raise BodyError(f"brotli: {err}") from None
            if not piece:
                raise BodyError("unexpected EOF")
            yield piece


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


# After this many bytes of bodies were given back, free heap memory goes back to the system: CPython
# frees a body's chunks to malloc, and glibc keeps them in its heap unless asked (RSS would stay up).
_TRIM_AFTER = 32 << 20


def _malloc_trim() -> object:
    """glibc's malloc_trim, or None elsewhere (musl, macOS: their allocators give memory back)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


class MemoryBudget:
    """The bytes of response bodies held for regex/CEL matching (--probes.body-memory-limit; 0 is no
    limit). The limit is the whole exporter's: with --web.workers N, each worker holds at most 1/N of it.
    A probe whose body would pass it fails."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.workers = 1  # how many worker processes share the limit
        self.held = 0
        self._released = 0
        self._trim: object = ...

    def take(self, size: int) -> bool:
        if self.limit and self.held + size > self.limit // self.workers:
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        self.held -= size
        self._released += size
        if self._released >= _TRIM_AFTER and (self.held == 0 or self._released >= 4 * _TRIM_AFTER):
            self._released = 0
            if self._trim is ...:
                self._trim = _malloc_trim()
            if callable(self._trim):
                self._trim(0)

    def reason(self) -> str:
        return (f"response bodies held for matching would exceed --probes.body-memory-limit "
                f"({_size_text(self.limit)}): set body_size_limit")


def _size_text(size: int) -> str:
    return f"{size >> 20}MiB" if size % (1 << 20) == 0 else f"{size}B"


# The process's budget; its limit is set from the flag (probe_exporter.probers.http.probe).
BODY_BUDGET = MemoryBudget(256 << 20)


class BodyReader:
    """Pulls a response body through the decoder and the size limit; `count` is what came out. What it
    keeps counts against `budget` (the probes pass the process's) until `release()`."""

    __slots__ = ("_budget", "_decoder", "_kept", "_limit", "_stream", "count")

    def __init__(self, stream: AsyncIterator[bytes], decoder: _Decoder | None, limit: int,
                 budget: MemoryBudget | None = None) -> None:
        self._stream = stream
        self._decoder = decoder
        self._limit = limit
        self._budget = budget if budget is not None else MemoryBudget(0)
        self._kept = 0
        self.count = 0

    def release(self) -> None:
        """The kept body is no longer needed (matched, or the probe failed): give its bytes back."""
        if self._kept:
            self._budget.give_back(self._kept)
            self._kept = 0

    async def read_all(self, keep: bool) -> bytes:
        """The whole (decoded) body if `keep`, else b"" after counting it; raises BodyError."""
        chunks: list[bytes] = []
        async for raw in self._stream:
            if self._decoder is None:
                self._take(raw, chunks, keep)
                continue
            await self._take_all(self._decoder.feed(raw), chunks, keep)
        if self._decoder is not None:
            await self._take_all(self._decoder.finish(), chunks, keep)
        if len(chunks) == 1:
            return chunks[0]
        # Joining holds the body twice for a moment: that counts too.
        if not self._budget.take(self._kept):
            raise BodyError(self._budget.reason())
        try:
            return b"".join(chunks)
        finally:
            chunks.clear()
            self._budget.give_back(self._kept)

    async def _take_all(self, pieces: Iterator[bytes], chunks: list[bytes], keep: bool) -> None:
        for number, piece in enumerate(pieces, 1):
            self._take(piece, chunks, keep)
            if number % _PIECES_PER_TURN == 0:
                await asyncio.sleep(0)  # let the deadline's cancellation in

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
        if keep and self._kept + len(data) > MAX_KEPT_BODY:
            # Counted up to the bound, so the count does not depend on how the body was cut into chunks.
            self.count += MAX_KEPT_BODY - self._kept
            raise BodyError(f"body larger than {MAX_KEPT_BODY >> 20}MiB to match against: set body_size_limit")
        if keep and not self._budget.take(len(data)):
            self.count += len(data)
            raise BodyError(self._budget.reason())
        self.count += len(data)
        if keep:
            self._kept += len(data)
            chunks.append(data)

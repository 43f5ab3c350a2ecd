"""Body decoding: decompression in bounded pieces, so the size limit holds against a compression bomb."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Iterator

import brotli
import pytest

from probe_exporter.probers.http.body import PIECE, BodyError, BodyReader, decoder_for

PAYLOAD = bytes(range(256)) * 20_000 + b"\0" * (3 * PIECE)  # ~8 MB, part of it barely compressible


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


COMPRESS = {
    "gzip": lambda data: gzip.compress(data, compresslevel=1),
    "deflate": _deflate,
    "br": lambda data: brotli.compress(data, quality=1),
}


async def _chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


class _Recorder:
    """A decoder that remembers the size of every piece it handed out."""

    def __init__(self, algorithm: str) -> None:
        decoder = decoder_for(algorithm)
        assert decoder is not None
        self.decoder = decoder
        self.pieces: list[int] = []

    def _record(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        for piece in pieces:
            self.pieces.append(len(piece))
            yield piece

    def feed(self, data: bytes) -> Iterator[bytes]:
        return self._record(self.decoder.feed(data))

    def finish(self) -> Iterator[bytes]:
        return self._record(self.decoder.finish())


@pytest.mark.parametrize("algorithm", sorted(COMPRESS))
async def test_decodes_everything_in_pieces_no_larger_than_piece(algorithm: str) -> None:
    decoder = _Recorder(algorithm)
    body = await BodyReader(_chunks(COMPRESS[algorithm](PAYLOAD)), decoder, 0).read_all(keep=True)
    assert body == PAYLOAD
    assert max(decoder.pieces) <= PIECE


@pytest.mark.parametrize("algorithm", sorted(COMPRESS))
async def test_truncated_stream_is_unexpected_eof(algorithm: str) -> None:
    compressed = COMPRESS[algorithm](PAYLOAD)
    reader = BodyReader(_chunks(compressed[:len(compressed) // 2]), decoder_for(algorithm), 0)
    with pytest.raises(BodyError, match=r"unexpected EOF"):
        await reader.read_all(keep=False)


@pytest.mark.parametrize("algorithm", sorted(COMPRESS))
async def test_a_bomb_stops_at_the_size_limit_without_decoding_the_rest(algorithm: str) -> None:
    # 128 MiB of zeros: ~130 kB as gzip or deflate, a few dozen bytes as brotli.
    bomb = COMPRESS[algorithm](b"\0" * (128 * PIECE))
    decoder = _Recorder(algorithm)
    reader = BodyReader(_chunks(bomb), decoder, 2 * PIECE)
    with pytest.raises(BodyError, match="http: request body too large"):
        await reader.read_all(keep=True)
    assert reader.count == 2 * PIECE
    # Decoding stopped at the limit: a few pieces, none larger than PIECE (not 128 MiB at once).
    assert max(decoder.pieces) <= PIECE
    assert sum(decoder.pieces) <= 4 * PIECE

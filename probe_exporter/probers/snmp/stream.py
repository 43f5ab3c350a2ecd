"""SNMP over TCP (`tcp://` targets, RFC 3430): one connection per module's session, messages back
to back on it, each delimited by its own BER length (no other framing), answers matched by
request-id (msgID for v3) as on UDP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from typing import Any

from probe_exporter.probers.snmp.community import _Parsed, parse_answer
from probe_exporter.probers.snmp.engine import SnmpError

# An answer longer than this closes the connection: a hostile agent cannot make us buffer more.
MAX_MESSAGE = 1 << 20


class StreamTransport:
    """The CommunityTransport interface (exchange, done, taps) on a TCP connection to one agent."""

    def __init__(self, source: tuple[int, str, int] | None = None) -> None:
        self.source = source
        self.pending: dict[int, asyncio.Future[_Parsed]] = {}
        self.taps: dict[int, Callable[[bytes], None]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None

    async def _connect(self, address: tuple[Any, ...], wait: float) -> asyncio.StreamWriter:
        family = socket.AF_INET6 if len(address) == 4 else socket.AF_INET
        local = self.source[1:] if self.source is not None and self.source[0] == family else None
        try:
            async with asyncio.timeout(wait):
                reader, writer = await asyncio.open_connection(address[0], address[1], family=family,
                                                               local_addr=local)
        except TimeoutError:
            raise SnmpError("error connecting to target: TCP connect timeout") from None
        except OSError as err:
            # asyncio's "Connect call failed (...)" hides the reason its errno gives.
            raise SnmpError(f"error connecting to target: {os.strerror(err.errno) if err.errno else err}") from None
        self._writer = writer
        self._reading = asyncio.get_running_loop().create_task(self._read(reader))
        return writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        reason = "connection closed by target"
        try:
            while True:
                head = await reader.readexactly(2)
                extra = b""
                length = head[1]
                if length & 0x80:
                    count = length & 0x7F
                    if not 0 < count <= 4:
                        reason = "unsupported BER length from target"
                        return
                    extra = await reader.readexactly(count)
                    length = int.from_bytes(extra, "big")
                if length > MAX_MESSAGE:
                    reason = f"message of {length} bytes from target (more than {MAX_MESSAGE})"
                    return
                data = head + extra + await reader.readexactly(length)
                answer = parse_answer(data)
                if answer is None:
                    continue
                future = self.pending.get(answer[0])
                if future is None or future.done():
                    continue
                tap = self.taps.get(answer[0])
                if tap is not None:
                    tap(data)
                future.set_result(answer[1])
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(SnmpError(reason))

    async def exchange(self, data: bytes, request_id: int, address: tuple[Any, ...], wait: float,
                       future: asyncio.Future[_Parsed] | None) -> tuple[asyncio.Future[_Parsed], _Parsed | None]:
        """Send `data`; the parsed answer, or None after `wait` s (a retry sends it again)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer = self._writer or await self._connect(address, wait)
        if self._reading is not None and self._reading.done():
            raise SnmpError("connection closed by target")
        if future is None:
            future = loop.create_future()
            self.pending[request_id] = future
        writer.write(data)
        try:
            await asyncio.wait_for(asyncio.shield(future), max(wait - (loop.time() - started), 0.0))
        except TimeoutError:
            return future, None
        return future, future.result()

    def done(self, request_id: int) -> None:
        self.taps.pop(request_id, None)
        future = self.pending.pop(request_id, None)
        if future is not None and not future.done():
            future.cancel()

    def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
        if self._writer is not None:
            with contextlib.suppress(RuntimeError):  # the loop may be closing
                self._writer.close()
        self._writer = None

"""The lean HTTP/1.1 exchange: one request on a fresh connection, on an asyncio protocol with httptools
(the parser uvicorn uses) reading the response.

A probe makes one exchange per connection (keep-alive is off, as in blackbox), so there is no pool, no
lock and no connection state machine to pay for. The phase timestamps are taken in the protocol's
callbacks: connect when the connection is made, tls when the handshake returns, the first response
byte when it arrives. When HTTP/2 is enabled and the server picks h2 by ALPN, the TLS connection is
handed to httpcore's HTTP/2 connection (its public API), which speaks the rest.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import httptools

from probe_exporter.probers.http.exchange import HopRequest, HopResponse, core_exchange
from probe_exporter.probers.http.timings import Trace

# Reading pauses when this much body waits for the reader (an infinite body cannot fill memory) and
# resumes below the low mark.
_HIGH_WATER = 1 << 18
_LOW_WATER = 1 << 16
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
_LENGTH_HEADERS = (b"content-length", b"transfer-encoding")
# The most a response head may take, as httpcore's HTTP/1.1 connection allows: a flood of headers
# fails the probe instead of filling memory.
MAX_HEAD_BYTES = 100 * 1024


class LocalProtocolError(Exception):
    """The request cannot be sent as configured (Go refuses it before dialing)."""


class RemoteProtocolError(Exception):
    """The response is not HTTP/1.x, or the connection ended before it did."""


class _Connection(asyncio.Protocol):
    """One connection: the transport's callbacks feed the parser, whose callbacks fill the response."""

    def __init__(self, trace: Trace, head_request: bool) -> None:
        self.trace = trace
        self.head_request = head_request
        self.transport: asyncio.Transport | None = None
        # The parser holds this protocol and this protocol the parser: a reference cycle, broken by
        # release(). A cycle per probe left to the garbage collector came back as tens of thousands of
        # objects freed in one pass, a stall of 20-30 ms every few seconds at 750 probes/s.
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.status = 0
        self.version = "HTTP/1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = self.complete = self.lost = self.informational = self.paused = False
        self.length_known = False  # Content-Length or chunked: the body must not end on close
        self.error: BaseException | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.head_bytes = 0
        self.waiter: asyncio.Future[None] | None = None
        self.raw: bytearray | None = None  # after an h2 ALPN answer: bytes for httpcore, unparsed

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.trace.connect_done = time.monotonic()
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.raw is not None:
            self.raw += data
            self._wake()
            return
        if not self.trace.response_start:
            self.trace.response_start = time.monotonic()  # Go's GotFirstResponseByte
        if self.complete or self.error is not None or self.parser is None:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._complete()  # 101 Switching Protocols: the response ends with its headers
        except httptools.HttpParserError as err:
            self.error = RemoteProtocolError(f"malformed HTTP response: {err}")
            self._wake()
        if not self.headers_done and self.error is None:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                self.error = RemoteProtocolError(f"response head larger than {MAX_HEAD_BYTES >> 10} KiB")
                self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost decides what the end means

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.release()
        if not self.complete and self.error is None:
            if self.headers_done and not self.length_known and exc is None:
                self.complete = True  # a body that ends on close
            elif exc is not None:
                self.error = exc
            else:
                self.error = RemoteProtocolError("unexpected EOF" if self.headers_done else
                                                 "server closed the connection without sending a response")
        self._wake()

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None  # called from within parser.feed_data
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.informational = True  # Go's client reads past 1xx responses
            return
        self.status = status
        self.version = "HTTP/" + self.parser.get_http_version()
        self.length_known = status in (204, 304) or any(k.lower() in _LENGTH_HEADERS for k, _ in self.headers)
        self.headers_done = True
        if self.head_request:
            self.complete = True  # no body follows, whatever Content-Length says
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self._complete()

    # --- for the reader ---

    def release(self) -> None:
        """Drop the parser (and with it the cycle through it); no more data is read."""
        self.parser = None

    def _complete(self) -> None:
        self.complete = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def take(self) -> bytes:
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered < _LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk

    def close(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if transport.get_extra_info("ssl_object") is not None or not self.complete:
            # No TLS close_notify exchange (blackbox does not wait for one either), and a connection
            # left mid-response is dropped, not drained.
            transport.abort()
        else:
            transport.close()


class LeanResponse:
    """The response of a lean exchange; its body is read as it arrives."""

    __slots__ = ("_conn", "headers", "http_version", "ssl_object", "status")

    def __init__(self, conn: _Connection, ssl_object: ssl.SSLObject | None) -> None:
        self._conn = conn
        self.status = conn.status
        self.headers = conn.headers
        self.http_version = conn.version
        self.ssl_object = ssl_object

    def body(self) -> AsyncIterator[bytes]:
        return _Body(self._conn)

    async def aclose(self) -> None:
        self._conn.close()


class _Body:
    """The body as it arrives (an iterator object, not an async generator: one left unfinished, as a
    failed check leaves it, needs no finalizing by the event loop)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        while True:
            if conn.chunks:
                return conn.take()
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                raise StopAsyncIteration
            await conn.wait()


def request_bytes(hop: HopRequest) -> bytes:
    """The request as it goes on the wire; LocalProtocolError for what Go would refuse to send."""
    method = hop.method.encode()
    if not _TOKEN.fullmatch(method):
        raise LocalProtocolError(f"net/http: invalid method {hop.method!r}")
    parts = [method, b" ", hop.target.encode(), b" HTTP/1.1\r\n"]
    for name, value in hop.headers:
        if not _TOKEN.fullmatch(name):
            raise LocalProtocolError(f"net/http: invalid header field name {name.decode('latin-1')!r}")
        if _BAD_VALUE.search(value):  # the value may be a credential: only the name is told
            raise LocalProtocolError(f"net/http: invalid header field value for {name.decode('latin-1')!r}")
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    if hop.body is not None:
        if hop.chunked:
            parts += (b"%x\r\n" % len(hop.body), hop.body, b"\r\n") if hop.body else ()
            parts.append(b"0\r\n\r\n")
        else:
            parts.append(hop.body)
    return b"".join(parts)


async def lean_exchange(hop: HopRequest, ssl_context: ssl.SSLContext | None) -> HopResponse:
    """One hop on a connection of its own: connect, TLS, write the request, read the response head."""
    wire = request_bytes(hop)
    loop = asyncio.get_running_loop()
    trace = hop.trace
    conn = _Connection(trace, hop.method == "HEAD")
    ssl_object: ssl.SSLObject | None = None
    try:
        trace.connect_start = time.monotonic()
        transport, _ = await loop.create_connection(lambda: conn, hop.dial_host, hop.port)
        if ssl_context is not None:
            trace.tls_start = time.monotonic()
            tls_transport = await loop.start_tls(transport, conn, ssl_context, server_hostname=hop.sni)
            trace.tls_done = time.monotonic()
            if tls_transport is None:
                raise RemoteProtocolError("TLS handshake ended the connection")
            conn.transport = tls_transport
            ssl_object = tls_transport.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                return await _http2(conn, hop)
        assert conn.transport is not None
        conn.transport.write(wire)
        while not conn.headers_done:
            if conn.error is not None:
                raise conn.error
            await conn.wait()
    except BaseException:  # an error or the deadline: leave no half-open connection behind
        conn.close()
        conn.release()  # connection_lost, which releases it too, never comes if the connect failed
        raise
    return LeanResponse(conn, ssl_object)


class _H2Stream(httpcore.AsyncNetworkStream):
    """The lean connection, after TLS chose h2, as the network stream httpcore's HTTP/2 connection reads."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        conn.raw = bytearray()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        conn = self._conn
        assert conn.raw is not None
        while not conn.raw:
            if conn.lost:
                return b""
            await conn.wait()
        data = bytes(conn.raw[:max_bytes])
        del conn.raw[:max_bytes]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self._conn.lost or self._conn.transport is None:
            raise httpcore.WriteError("connection closed")
        self._conn.transport.write(buffer)

    async def aclose(self) -> None:
        if self._conn.transport is not None:
            self._conn.transport.abort()

    def get_extra_info(self, info: str) -> Any:
        transport = self._conn.transport
        if transport is None:
            return None
        names = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername", "socket": "socket"}
        return transport.get_extra_info(names[info]) if info in names else None


async def _http2(conn: _Connection, hop: HopRequest) -> HopResponse:
    origin = httpcore.Origin(b"https", hop.dial_host.encode(), hop.port)
    return await core_exchange(httpcore.AsyncHTTP2Connection(origin=origin, stream=_H2Stream(conn)), True, hop)

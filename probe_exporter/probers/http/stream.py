"""An httpcore network backend on plain asyncio streams, for connections to an IP address.

httpcore's AnyIOBackend costs ~0.1-0.3 ms of CPU per probe in anyio's cancel scopes, task-group
connect and backend lookups (bench/http); the runner's asyncio.timeout already bounds every probe, so
this backend only maps errors to httpcore's exceptions and honours the per-call timeouts httpcore asks
for. A host name still goes through AnyIOBackend: it resolves and races the addresses (Happy
Eyeballs), which uvloop's create_connection cannot do.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

from probe_exporter.probers.net.hostport import ip_literal

# httpcore's socket option triple (or quadruple), as its network backend interface takes them.
SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


def _socket_readable(sock: socket.socket | None) -> bool:
    """Whether a socket has data or an EOF waiting (a closed or missing one counts as readable)."""
    if sock is None or sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS over TCP, or TLS over TLS through an https proxy) connection."""

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            if timeout is None:
                return await self._reader.read(max_bytes)
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as err:
            raise httpcore.ReadTimeout(str(err)) from err
        except OSError as err:  # reset, broken pipe, ssl.SSLError
            raise httpcore.ReadError(str(err) or type(err).__name__) from err

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            if timeout is None:
                await self._writer.drain()
            else:
                async with asyncio.timeout(timeout):
                    await self._writer.drain()
        except TimeoutError as err:
            raise httpcore.WriteTimeout(str(err)) from err
        except (OSError, RuntimeError) as err:  # RuntimeError: write on a transport being closed
            raise httpcore.WriteError(str(err) or type(err).__name__) from err

    async def aclose(self) -> None:
        if self._writer.get_extra_info("ssl_object") is not None:
            # No TLS close_notify exchange, as AnyIOBackend (standard_compatible=False) and blackbox do
            # not wait for one either: asyncio's graceful TLS close would hold the socket up to 30 s
            # for a reply that a hostile or lazy peer never sends. The HTTP exchange is over by now.
            self._writer.transport.abort()
        else:
            self._writer.close()  # no wait_closed(): the transport closes on its own

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        """TLS on this connection: the target's after connect, or through a CONNECT tunnel (TLS in TLS
        when the proxy itself is https). SNI and ALPN come from `server_hostname` and the context."""
        try:
            if timeout is None:
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
            else:
                async with asyncio.timeout(timeout):
                    await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as err:
            self._writer.close()
            raise httpcore.ConnectTimeout(str(err)) from err
        except OSError as err:  # ssl.SSLError (a certificate error too) is an OSError
            self._writer.close()
            raise httpcore.ConnectError(str(err) or type(err).__name__) from err
        except BaseException:
            self._writer.close()
            raise
        return self  # StreamWriter.start_tls swaps the transport under the same reader and writer

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            # An idle connection is "readable" when the peer closed it or sent something unasked;
            # the reader may already hold what the socket had.
            return self._reader.at_eof() or _socket_readable(self._writer.get_extra_info("socket"))
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._by_name = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[SocketOption] | None = None) -> httpcore.AsyncNetworkStream:
        if ip_literal(host) is None:
            return await self._by_name.connect_tcp(host, port, timeout, local_address, socket_options)
        local_addr = (local_address, 0) if local_address else None
        try:
            if timeout is None:
                reader, writer = await asyncio.open_connection(host, port, local_addr=local_addr)
            else:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(host, port, local_addr=local_addr)
        except TimeoutError as err:
            raise httpcore.ConnectTimeout(str(err)) from err
        except OSError as err:
            raise httpcore.ConnectError(str(err) or type(err).__name__) from err
        # asyncio has set TCP_NODELAY already.
        if socket_options:
            sock: socket.socket = writer.get_extra_info("socket")
            try:
                for option in socket_options:
                    sock.setsockopt(*option)
            except OSError as err:
                writer.close()
                raise httpcore.ConnectError(str(err)) from err
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[SocketOption] | None = None) -> httpcore.AsyncNetworkStream:
        return await self._by_name.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

"""A small SOCKS5 proxy (RFC 1928, username/password per RFC 1929) on asyncio, for the proxy tests:
it records who asked for what and relays the bytes to the real destination."""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from dataclasses import dataclass, field


@dataclass
class SocksRequest:
    username: str
    password: str
    host: str  # as the client sent it: an IP literal or a name (socks5h)
    port: int


@dataclass
class Socks5Server:
    username: str = ""  # "" accepts clients without authentication
    password: str = ""
    names: dict[str, str] = field(default_factory=dict)  # name -> address, the proxy's own "DNS"
    requests: list[SocksRequest] = field(default_factory=list)
    refused_logins: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> Socks5Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, scheme: str = "socks5", userinfo: str = "") -> str:
        return f"{scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        wanted = 0x02 if self.username else 0x00
        if version != 5 or wanted not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(bytes((5, wanted)))
        username = password = ""
        if wanted == 0x02:
            _, length = await reader.readexactly(2)
            username = (await reader.readexactly(length)).decode()
            (length,) = await reader.readexactly(1)
            password = (await reader.readexactly(length)).decode()
            if (username, password) != (self.username, self.password):
                self.refused_logins += 1
                writer.write(b"\x01\x01")
                return
            writer.write(b"\x01\x00")
        _, command, _, kind = await reader.readexactly(4)
        if command != 1:  # CONNECT only
            writer.write(b"\x05\x07\x00\x01" + bytes(6))
            return
        if kind == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif kind == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        else:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode()
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        self.requests.append(SocksRequest(username, password, host, port))
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.names.get(host, host), port)
        except OSError:
            writer.write(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
            return
        writer.write(b"\x05\x00\x00\x01" + bytes(6))
        await asyncio.gather(_relay(reader, upstream_writer), _relay(upstream_reader, writer))


async def _relay(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except ConnectionError:
        pass
    finally:
        try:
            sink.write_eof()
        except (OSError, RuntimeError):
            pass

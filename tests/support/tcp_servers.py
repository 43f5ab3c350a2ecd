"""Real line-protocol servers on loopback for the tcp prober tests (SSH/IRC/POP3S/SMTP-like dialogues)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import trustme

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class PKI:
    """A private CA and a server certificate for localhost, 127.0.0.1 and ::1."""

    ca: trustme.CA
    ca_file: str
    server_cert: trustme.LeafCert
    other_ca_file: str  # a CA that did not sign the server certificate

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_cert.configure_cert(ctx)
        return ctx


def make_pki(directory: Path) -> PKI:
    ca = trustme.CA(organization_name="probe_exporter test CA")
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1", common_name="localhost")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    other_file = directory / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_file))
    return PKI(ca=ca, ca_file=str(ca_file), server_cert=cert, other_ca_file=str(other_file))


@contextlib.asynccontextmanager
async def serve(handler: Handler, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
                ) -> AsyncIterator[int]:
    """Run `handler` for every connection; yields the port. The connection is closed after the handler."""

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            pass  # the client went away, or the loop is shutting down
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, host, 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                await server.wait_closed()


async def send_lines(writer: asyncio.StreamWriter, *lines: str) -> None:
    for line in lines:
        writer.write(line.encode() + b"\r\n")
    await writer.drain()


async def ssh_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """What OpenSSH does first: a banner, then it waits for the client's."""
    await send_lines(writer, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")
    await reader.readline()


async def irc_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """NICK/USER, then PING with a token that must come back in PONG, then the 001 welcome."""
    nick = await reader.readline()
    user = await reader.readline()
    if not nick.startswith(b"NICK ") or not user.startswith(b"USER "):
        await send_lines(writer, "ERROR :expected NICK and USER")
        return
    await send_lines(writer, ":irc.local NOTICE * :*** Looking up your hostname", "PING :a1b2c3d4")
    pong = await reader.readline()
    if pong.rstrip(b"\r\n") == b"PONG a1b2c3d4":
        await send_lines(writer, ":irc.local 001 prober :Welcome to the test IRC network")
    else:
        await send_lines(writer, f"ERROR :bad pong {pong!r}")
        return
    await reader.read(100)


def starttls_server(server_context: ssl.SSLContext) -> Handler:
    """An SMTP-like STARTTLS dialogue: the capability list, STARTTLS, then a TLS-only EHLO."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send_lines(writer, "220 mail.local ESMTP ready")
        if not (await reader.readline()).startswith(b"EHLO"):
            return
        await send_lines(writer, "250-mail.local", "250-STARTTLS", "250 OK")
        if (await reader.readline()).rstrip() != b"STARTTLS":
            return
        await send_lines(writer, "220 Go ahead")
        await writer.start_tls(server_context)
        if (await reader.readline()).startswith(b"EHLO"):
            await send_lines(writer, "250-mail.local", "250-AUTH PLAIN", "250 OK")
        await reader.readline()

    return handler


def pg_ssl_server(server_context: ssl.SSLContext) -> Handler:
    """A PostgreSQL server's SSLRequest negotiation: 8-byte request, `S`, then TLS.

    The probe sends `\\n` after every `send`, also after the binary SSLRequest, as upstream does.
    A real PostgreSQL with ssl=on reads that byte with the request, completes the handshake (the
    probe succeeds) and then logs "received unencrypted data after SSL request"; this server
    likewise consumes the stray byte before the handshake."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readexactly(8)
        if request != bytes.fromhex("0000000804d2162f"):
            return
        writer.write(b"S")
        await writer.drain()
        if await reader.readexactly(1) != b"\n":
            return
        await writer.start_tls(server_context)
        await reader.read(100)

    return handler

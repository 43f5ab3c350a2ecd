"""A small authoritative DNS server (dnspython messages, asyncio sockets) for the dns prober tests.

It answers over UDP and TCP on the same port, and over DNS-over-TLS on another one. Zone
`example.test.` plus a few special names: `servfail.` (SERVFAIL), `slow.` (never answers),
`rd.` (TXT says whether the query had RD set), `big.` (too large for UDP: truncated, TC set).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

ZONE = "example.test."
SOA = "ns1.example.test. hostmaster.example.test. 2024010101 7200 3600 1209600 3600"
RECORDS: dict[tuple[str, str], list[str]] = {
    ("www.example.test.", "A"): ["192.0.2.1", "192.0.2.2"],
    ("www.example.test.", "AAAA"): ["2001:db8::1"],
    ("example.test.", "SOA"): [SOA],
    ("example.test.", "NS"): ["ns1.example.test."],
    ("ns1.example.test.", "A"): ["192.0.2.53"],
    ("mx.example.test.", "MX"): ["10 mail.example.test."],
    ("txt.example.test.", "TXT"): ['"hello world" "second"'],
    ("ds.example.test.", "DS"): ["60485 5 1 2bb183af5f22588179a53b0a98631fad1a292118"],
}


def _rrset(name: str, rdtype: str, values: list[str], ttl: int = 300,
           rdclass: dns.rdataclass.RdataClass = dns.rdataclass.IN) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(name, ttl, rdclass, rdtype, values)


@dataclass
class DNSServer:
    port: int = 0
    tls_port: int = 0
    queries: list[dns.message.Message] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def answer(self, query: dns.message.Message, over_udp: bool, source: str) -> dns.message.Message | None:
        self.queries.append(query)
        self.sources.append(source)
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name == "slow.example.test.":
            return None
        if name == "servfail.example.test.":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        if question.rdclass == dns.rdataclass.CH:
            response.answer.append(_rrset(name, "TXT", ['"probe-test"'], 0, dns.rdataclass.CH))
            return response
        if name == "rd.example.test.":
            rd = "1" if query.flags & dns.flags.RD else "0"
            response.answer.append(_rrset(name, "TXT", [f'"rd={rd}"']))
            return response
        if name == "big.example.test.":
            if over_udp:
                response.flags |= dns.flags.TC
            else:
                response.answer.append(_rrset(name, "TXT", [f'"{i:03d}{"x" * 60}"' for i in range(20)]))
            return response
        if not name.endswith(ZONE):
            response.set_rcode(dns.rcode.REFUSED)
            response.flags &= ~dns.flags.AA
            return response
        types = [t for (n, t) in RECORDS if n == name]
        if not types:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(_rrset(ZONE, "SOA", [SOA], 3600))
            return response
        wanted = types if rdtype == "ANY" else [rdtype]
        for record_type in wanted:
            if (name, record_type) in RECORDS:
                response.answer.append(_rrset(name, record_type, RECORDS[(name, record_type)]))
        if response.answer and rdtype != "NS":
            response.authority.append(_rrset(ZONE, "NS", RECORDS[(ZONE, "NS")], 3600))
            response.additional.append(_rrset("ns1.example.test.", "A", ["192.0.2.53"], 3600))
        elif not response.answer:
            response.authority.append(_rrset(ZONE, "SOA", [SOA], 3600))
        return response


class _UDPHandler(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        response = self.server.answer(dns.message.from_wire(data), over_udp=True, source=str(addr[0]))
        if response is not None and self.transport is not None:
            self.transport.sendto(response.to_wire(), addr)


def _stream_handler(server: DNSServer) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                response = server.answer(dns.message.from_wire(await reader.readexactly(length)), over_udp=False,
                                         source=str(writer.get_extra_info("peername")[0]))
                if response is None:
                    await reader.read(1)
                    return
                wire = response.to_wire()
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return handle


@contextlib.asynccontextmanager
async def dns_server(host: str = "127.0.0.1", tls_context: ssl.SSLContext | None = None,
                     server: DNSServer | None = None) -> AsyncIterator[DNSServer]:
    """UDP and TCP on one port (and DoT on `tls_port` when a server context is given); `server`
    answers (a DNSServer subclass with its own `answer`), else the example.test zone."""
    loop = asyncio.get_running_loop()
    server = server or DNSServer()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(20):
        udp, _protocol = await loop.create_datagram_endpoint(lambda: _UDPHandler(server), local_addr=(host, 0),
                                                             family=family)
        port = udp.get_extra_info("sockname")[1]
        try:
            tcp = await asyncio.start_server(_stream_handler(server), host, port)
            break
        except OSError:
            udp.close()
    else:
        raise RuntimeError("no port free for both UDP and TCP")
    server.port = port
    tls_server = None
    if tls_context is not None:
        tls_server = await asyncio.start_server(_stream_handler(server), host, 0, ssl=tls_context)
        server.tls_port = tls_server.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        udp.close()
        for stream_server in (tcp, tls_server):
            if stream_server is not None:
                stream_server.close()

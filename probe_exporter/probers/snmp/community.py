"""SNMPv1/v2c requests on our own UDP socket, decoded by the fast BER decoder (ber.py).

pysnmp's dispatcher decodes every response with pyasn1 (~85 µs of CPU per varbind, most of an
if_mib scrape); community-based requests need none of its machinery (no USM, no discovery), so
they take this path: one shared socket per address family for the process, responses matched by
request-id and source address. SNMPv3 messages share the sockets: they are matched by msgID and
handed over raw, to be authenticated and decrypted by the requester (v3.py, engine.py).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from collections.abc import Callable
from typing import Any

from probe_exporter.probers.snmp import ber, v3

# A v1/v2c answer decoded (version, community, request-id, error-status, error-index, varbinds),
# or a v3 message as received.
_Parsed = tuple[int, bytes, int, int, int, list[Any]] | bytes


def parse_answer(data: bytes) -> tuple[int, _Parsed] | None:
    """(request-id or msgID, parsed answer), or None for what we cannot read (as if lost)."""
    try:
        msg_id = v3.peek_msg_id(data)
        if msg_id is None:
            parsed = ber.decode_response(data)
            return parsed[2], parsed
    except (ber.BerError, IndexError, ValueError):
        return None
    return msg_id, data


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, pending: dict[int, tuple[asyncio.Future[_Parsed], tuple[str, int]]],
                 taps: dict[int, Callable[[bytes], None]]) -> None:
        self.pending = pending
        self.taps = taps
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        answer = parse_answer(data)
        if answer is None:
            return  # not an answer we can read: as if lost (the request times out)
        msg_id, parsed = answer
        entry = self.pending.get(msg_id)
        if entry is None:
            return
        future, expected = entry
        if addr[0] != expected[0] or addr[1] != expected[1] or future.done():
            return  # only the agent we asked may answer
        tap = self.taps.get(msg_id)
        if tap is not None:
            tap(data)
        future.set_result(parsed)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error on the shared unconnected socket cannot be tied to one request.
        pass


class CommunityTransport:
    """The process's v1/v2c sockets (IPv4 and IPv6), created in the running loop on first use."""

    def __init__(self) -> None:
        self.pending: dict[int, tuple[asyncio.Future[_Parsed], tuple[str, int]]] = {}
        self._endpoints: dict[int, _Protocol] = {}
        # request-id -> what sees the raw answer (--snmp.debug-packets)
        self.taps: dict[int, Callable[[bytes], None]] = {}
        # --snmp.source-address: (family, host, port) the sockets of that family are bound to.
        self.source: tuple[int, str, int] | None = None
        self._ids = itertools.count(random.randrange(1, 1 << 30))

    def next_request_id(self) -> int:
        return next(self._ids) & 0x7FFFFFFF or 1

    def use_source(self, source: tuple[int, str, int] | None) -> None:
        """Bind the sockets to --snmp.source-address (those open elsewhere are closed first)."""
        if source != self.source:
            self.close()
            self.source = source

    async def _endpoint(self, family: int) -> _Protocol:
        protocol = self._endpoints.get(family)
        if protocol is None:
            loop = asyncio.get_running_loop()
            local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
            if self.source is not None and self.source[0] == family:
                local = self.source[1:]
            _, protocol = await loop.create_datagram_endpoint(lambda: _Protocol(self.pending, self.taps),
                                                              local_addr=local, family=family)
            self._endpoints[family] = protocol
        return protocol

    async def exchange(self, data: bytes, request_id: int, address: tuple[Any, ...], wait: float,
                       future: asyncio.Future[_Parsed] | None) -> tuple[asyncio.Future[_Parsed], _Parsed | None]:
        """Send `data`; the parsed answer, or None after `wait` s. The future carries over retries,
        so a late answer to the first try still counts."""
        family = socket.AF_INET6 if len(address) == 4 else socket.AF_INET
        protocol = await self._endpoint(family)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self.pending[request_id] = (future, (address[0], address[1]))
        assert protocol.transport is not None
        protocol.transport.sendto(data, address)
        if future.done():
            return future, None if future.cancelled() else future.result()
        # One waiter woken by the answer or by a timer: what wait_for(shield(future)) does, with
        # less machinery per packet (a walk sends one request per 25 varbinds).
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = loop.call_later(wait, wake)
        future.add_done_callback(wake)
        try:
            await waiter
        finally:
            timer.cancel()
            future.remove_done_callback(wake)
        if future.done() and not future.cancelled():
            return future, future.result()
        return future, None

    def done(self, request_id: int) -> None:
        self.taps.pop(request_id, None)
        entry = self.pending.pop(request_id, None)
        if entry is not None and not entry[0].done():
            entry[0].cancel()

    def close(self) -> None:
        for protocol in self._endpoints.values():
            if protocol.transport is not None:
                protocol.transport.close()
        self._endpoints.clear()

"""HTTP/3 for `enable_http3` (blackbox 0.28+), on aioquic.

A hop over QUIC looks to the HTTP prober like any httpcore connection: `handle_async_request`
returns an httpcore.Response whose `network_stream` offers the TLS facts `register_tls_metrics`
reads (`ssl_object` is a small stand-in for ssl.SSLObject). Trace events are fed as for TCP:
the QUIC handshake counts as connect and TLS together, since QUIC does both in one exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from typing import Any, cast

import httpcore
from cryptography.hazmat.primitives.serialization import Encoding

from probe_exporter.config.tls import TLSConfig
from probe_exporter.extras import MissingExtra, required

# Without the http3 extra the module still imports (an HTTP/3 module loads); each HTTP/3 hop then fails
# with the MissingExtra below as its reason.
_missing: MissingExtra | None = None
try:
    with required("http3"):
        from aioquic.asyncio.client import connect as quic_connect
        from aioquic.asyncio.protocol import QuicConnectionProtocol
        from aioquic.h3.connection import H3_ALPN, H3Connection
        from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
        from aioquic.quic.configuration import QuicConfiguration
        from aioquic.quic.events import ConnectionTerminated, QuicEvent
        from aioquic.tls import CipherSuite
except MissingExtra as err:
    QuicConnectionProtocol = object  # type: ignore[assignment,misc]
    _missing = err


def quic_configuration(tls: TLSConfig, server_name: str) -> Any:
    """aioquic's client configuration from a prometheus/common tls_config (TLS 1.3 is QUIC's only version)."""
    if _missing is not None:
        raise _missing
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=server_name)
    config.verify_mode = ssl.CERT_NONE if tls.insecure_skip_verify else ssl.CERT_REQUIRED
    if tls.ca:
        config.cadata = tls.ca.encode()
    elif tls.ca_file:
        config.cafile = tls.ca_file
    if tls.cert_file and tls.key_file:
        config.load_cert_chain(tls.cert_file, tls.key_file)
    elif tls.cert or tls.key:
        with tempfile.TemporaryDirectory() as tmp:
            cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            with open(cert_path, "w") as handle:
                handle.write(tls.cert or "")
            with open(key_path, "w") as handle:
                handle.write(tls.key.reveal() if tls.key else "")
            config.load_cert_chain(tls.cert_file or cert_path, tls.key_file or key_path)
    return config


class _TLSFacts:
    """What register_tls_metrics asks an ssl.SSLObject, answered from aioquic's TLS state."""

    def __init__(self, tls_state: Any, context: ssl.SSLContext | None) -> None:
        leaf = tls_state._peer_certificate
        chain = tls_state._peer_certificate_chain
        self._presented = [c.public_bytes(Encoding.DER) for c in ([leaf] if leaf else []) + list(chain)]
        suite = tls_state.key_schedule.cipher_suite if tls_state.key_schedule else None
        self._cipher = "TLS_" + CipherSuite(suite).name if suite is not None else ""
        # The trust store a verified chain is rebuilt from (the module's ssl context holds the same CAs).
        self.context = context

    def get_unverified_chain(self) -> list[bytes]:
        return self._presented

    def get_verified_chain(self) -> list[bytes]:
        return []

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        return self._presented[0] if self._presented else None

    def version(self) -> str:
        return "TLSv1.3"

    def cipher(self) -> tuple[str, str, int]:
        return (self._cipher, "TLSv1.3", 0)


class _Stream:
    def __init__(self, facts: _TLSFacts) -> None:
        self._facts = facts

    def get_extra_info(self, name: str) -> Any:
        return self._facts if name == "ssl_object" else None


class _H3Client(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.events: dict[int, asyncio.Queue[H3Event | None]] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            for queue in self.events.values():
                queue.put_nowait(None)
            return
        for h3_event in self.h3.handle_event(event):
            stream_id = getattr(h3_event, "stream_id", None)
            if stream_id in self.events:
                self.events[stream_id].put_nowait(h3_event)


class HTTP3Connection:
    """One QUIC connection for one hop; the same interface the prober uses for httpcore connections."""

    def __init__(self, host: str, port: int, tls: TLSConfig, context: ssl.SSLContext | None) -> None:
        self._host, self._port, self._tls, self._context = host, port, tls, context
        self._stack = contextlib.AsyncExitStack()

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        trace = request.extensions.get("trace")
        sni = request.extensions.get("sni_hostname") or self._host
        configuration = quic_configuration(self._tls, sni)
        if trace is not None:
            await trace("connection.connect_tcp.started", {})
            await trace("connection.start_tls.started", {})
        try:
            protocol = cast(_H3Client, await self._stack.enter_async_context(
                quic_connect(self._host, self._port, configuration=configuration, create_protocol=_H3Client)))
        except ConnectionError as err:
            raise httpcore.ConnectError(str(err) or "QUIC handshake failed") from None
        if trace is not None:
            await trace("connection.connect_tcp.complete", {})
            await trace("connection.start_tls.complete", {})
        stream_id = protocol._quic.get_next_available_stream_id()
        queue: asyncio.Queue[H3Event | None] = asyncio.Queue()
        protocol.events[stream_id] = queue
        authority = next((v for k, v in request.headers if k.lower() == b"host"), self._host.encode())
        headers = [(b":method", request.method), (b":scheme", b"https"), (b":authority", authority),
                   (b":path", request.url.target)]
        headers += [(k.lower(), v) for k, v in request.headers
                    if k.lower() not in (b"host", b"connection", b"transfer-encoding")]
        body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
        protocol.h3.send_headers(stream_id, headers, end_stream=not body)
        if body:
            protocol.h3.send_data(stream_id, body, end_stream=True)
        protocol.transmit()
        status, response_headers, ended = 0, [], False
        pending: list[bytes] = []
        while not status:
            event = await queue.get()
            if event is None:
                raise httpcore.RemoteProtocolError("QUIC connection closed before the response")
            if isinstance(event, HeadersReceived):
                for key, value in event.headers:
                    if key == b":status":
                        status = int(value)
                    elif not key.startswith(b":"):
                        response_headers.append((key, value))
                ended = event.stream_ended
            elif isinstance(event, DataReceived):
                pending.append(event.data)
                ended = event.stream_ended
        if trace is not None:
            await trace("http3.receive_response_headers.complete", {})
        facts = _TLSFacts(protocol._quic.tls, self._context)
        return httpcore.Response(status, headers=response_headers, content=_body(queue, pending, ended),
                                 extensions={"http_version": b"HTTP/3", "network_stream": _Stream(facts)})

    async def aclose(self) -> None:
        await self._stack.aclose()


async def _body(queue: asyncio.Queue[H3Event | None], pending: list[bytes], ended: bool) -> AsyncIterator[bytes]:
    for chunk in pending:
        yield chunk
    while not ended:
        event = await queue.get()
        if event is None:
            raise httpcore.ReadError("QUIC connection closed mid-body")
        if isinstance(event, DataReceived):
            if event.data:
                yield event.data
            ended = event.stream_ended
        elif isinstance(event, HeadersReceived):  # trailers
            ended = event.stream_ended

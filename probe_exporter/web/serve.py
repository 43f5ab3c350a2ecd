"""The uvicorn server for an app: TLS from the web config, our logging, keep-alive for scrapers."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from probe_exporter import logs
from probe_exporter.web.listener import ConnectionGuard, ListenerLimits, bounded_protocol
from probe_exporter.web.security import WebConfigSource, client_sans_allowed


def make_server(app: FastAPI) -> uvicorn.Server:
    """A server for `create_app(...)`; HTTPS when the app's web config has a tls_server_config. Every
    connection is held to the listener limits of the exporter's settings (probe_exporter.web.listener)."""
    settings = app.state.exporter.settings
    limits = ListenerLimits(read_header_timeout=settings.web_read_header_timeout,
                            max_connections=settings.web_max_connections)
    source: WebConfigSource | None = app.state.web_config
    context = source.ssl_context() if source is not None else None
    factory: Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext] | None = None
    base: type[asyncio.Protocol] = AutoHTTPProtocol
    if context is not None and source is not None:
        def factory(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
            return context

        base = _san_checking_protocol(source)
    # ws="none": no route speaks WebSocket, and uvicorn would import wsproto for it (~1 MiB).
    # timeout_keep_alive: uvicorn closes idle keep-alive connections itself.
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_keep_alive=limits.idle_timeout,
                            backlog=2048, ssl_context_factory=factory, ws="none",
                            http=bounded_protocol(ConnectionGuard(limits), base))
    return uvicorn.Server(config)


def _san_checking_protocol(source: WebConfigSource) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, closing TLS connections whose client certificate has no allowed SAN
    (asyncio calls connection_made after the handshake, so the verified certificate is there)."""
    base: type = AutoHTTPProtocol

    class ClientSANCheckingProtocol(base):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            allowed = source.config.tls_server_config.client_allowed_sans
            if allowed is None:
                return
            if not client_sans_allowed(transport.get_extra_info("peercert"), allowed):
                logs.log(logging.INFO, "Client certificate has no allowed SAN, closing the connection",
                         peer=str(transport.get_extra_info("peername")))
                transport.close()

    return ClientSANCheckingProtocol

"""The asyncio network backend under httpcore: TLS (SNI, ALPN, TLS in TLS as through an https proxy),
socket options and error mapping, on the stock asyncio loop and on uvloop (which the server runs)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import httpcore
import pytest
import uvloop

from probe_exporter.probers.http.stream import AsyncioBackend, AsyncioStream
from tests.support.http_server import LocalServer, Resp, TLSMaterial

LOOPS = ["asyncio", "uvloop"]


async def run_on(loop_kind: str, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run the client side on a fresh loop of that kind in a thread (the servers are threads too)."""
    runner = uvloop.run if loop_kind == "uvloop" else asyncio.run
    await asyncio.to_thread(runner, scenario())  # type: ignore[operator]


def client_context(tls_material: TLSMaterial, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls_material.ca_file))
    context.set_alpn_protocols(alpn)
    return context


class TLSForwarder:
    """An https "proxy" reduced to its transport: terminates TLS, then pipes bytes to one upstream."""

    def __init__(self, context: ssl.SSLContext, upstream_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.context, self.upstream_port = context, upstream_port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        with self.context.wrap_socket(raw, server_side=True) as client, \
                socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
            _pipe(client, upstream)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass


@pytest.fixture()
def silent_port() -> Iterator[int]:
    """Accepts connections and never says anything."""
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener.getsockname()[1]
    listener.close()


@pytest.mark.parametrize("loop_kind", LOOPS)
async def test_tls_sends_sni_and_negotiates_h2(loop_kind: str, https_server: LocalServer,
                                                tls_material: TLSMaterial) -> None:
    async def scenario() -> None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", https_server.port, timeout=5)
        tls = await stream.start_tls(client_context(tls_material, ["h2", "http/1.1"]), "localhost", timeout=5)
        ssl_object = tls.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        assert ssl_object.selected_alpn_protocol() == "h2"
        assert ssl_object.server_hostname == "localhost"
        assert ssl_object.getpeercert()["subject"]
        assert tls.get_extra_info("server_addr") == ("127.0.0.1", https_server.port)
        await tls.aclose()

    await run_on(loop_kind, scenario)


@pytest.mark.parametrize("loop_kind", LOOPS)
async def test_tls_in_tls_through_an_https_proxy(loop_kind: str, https_h1_server: LocalServer,
                                                 tls_material: TLSMaterial) -> None:
    url = https_h1_server.route(lambda req: Resp(body=b"through the tunnel"))
    forwarder = TLSForwarder(tls_material.server_context(["http/1.1"]), https_h1_server.port)
    path = "/" + url.split("/", 3)[3]

    async def scenario() -> None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", forwarder.port, timeout=5)
        stream = await stream.start_tls(client_context(tls_material, []), "localhost", timeout=5)
        outer = stream.get_extra_info("ssl_object")
        stream = await stream.start_tls(client_context(tls_material, ["http/1.1"]), "localhost", timeout=5)
        inner = stream.get_extra_info("ssl_object")
        assert inner is not outer and inner.selected_alpn_protocol() == "http/1.1"
        await stream.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while not received.endswith(b"through the tunnel"):  # the forwarder does not pass the close on
            received += await stream.read(65536, timeout=5)
        assert received.startswith(b"HTTP/1.1 200") and received.endswith(b"through the tunnel")
        await stream.aclose()

    try:
        await run_on(loop_kind, scenario)
    finally:
        forwarder.listener.close()


@pytest.mark.parametrize("loop_kind", LOOPS)
async def test_socket_options_are_applied(loop_kind: str, http_server: LocalServer) -> None:
    async def scenario() -> None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", http_server.port, timeout=5,
                                                    socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)])
        sock = stream.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert stream.get_extra_info("is_readable") is False
        await stream.aclose()

    await run_on(loop_kind, scenario)


@pytest.mark.parametrize("loop_kind", LOOPS)
async def test_errors_map_to_httpcore(loop_kind: str, refused_port: int, silent_port: int,
                                      tls_material: TLSMaterial) -> None:
    async def scenario() -> None:
        backend = AsyncioBackend()
        with pytest.raises(httpcore.ConnectError):
            await backend.connect_tcp("127.0.0.1", refused_port, timeout=5)
        stream = await backend.connect_tcp("127.0.0.1", silent_port, timeout=5)
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(100, timeout=0.05)
        with pytest.raises(httpcore.ConnectTimeout):  # a TLS handshake nobody answers
            await stream.start_tls(client_context(tls_material, []), "localhost", timeout=0.05)

    await run_on(loop_kind, scenario)


@pytest.mark.parametrize("loop_kind", LOOPS)
async def test_certificate_error_is_a_connect_error(loop_kind: str, https_h1_server: LocalServer) -> None:
    async def scenario() -> None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", https_h1_server.port, timeout=5)
        with pytest.raises(httpcore.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await stream.start_tls(ssl.create_default_context(), "localhost", timeout=5)

    await run_on(loop_kind, scenario)


@pytest.mark.parametrize("loop_kind", LOOPS)
async def test_host_names_resolve_and_race_through_anyio(loop_kind: str, http_server: LocalServer) -> None:
    async def scenario() -> None:
        stream = await AsyncioBackend().connect_tcp("localhost", http_server.port, timeout=5)
        assert not isinstance(stream, AsyncioStream)
        await stream.aclose()
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", http_server.port, timeout=5)
        assert isinstance(stream, AsyncioStream)
        await stream.aclose()

    await run_on(loop_kind, scenario)


@pytest.mark.parametrize("loop_kind", LOOPS)
async def test_closing_tls_does_not_wait_for_the_peers_close_notify(loop_kind: str,
                                                                  tls_material: TLSMaterial) -> None:
    """A peer that never answers close_notify must not keep the socket open (asyncio would for 30 s)."""
    listener = socket.create_server(("127.0.0.1", 0))
    server_context = tls_material.server_context(["http/1.1"])
    closed_after: list[float] = []

    def serve() -> None:
        raw, _ = listener.accept()
        with server_context.wrap_socket(raw, server_side=True) as conn:
            conn.recv(4)  # "ping": the handshake is complete on both sides
            conn.sendall(b"pong")
            # Read the raw TCP stream from here on, and never send a close_notify back.
            with socket.socket(fileno=os.dup(conn.fileno())) as tcp:
                tcp.settimeout(5)
                start = time.monotonic()
                try:
                    while tcp.recv(4096):
                        pass
                except OSError:  # a reset is a close too
                    pass
                closed_after.append(time.monotonic() - start)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def scenario() -> None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", listener.getsockname()[1], timeout=5)
        stream = await stream.start_tls(client_context(tls_material, []), "localhost", timeout=5)
        await stream.write(b"ping", timeout=5)
        assert await stream.read(4, timeout=5) == b"pong"
        await stream.aclose()
        await asyncio.sleep(0.1)

    try:
        await run_on(loop_kind, scenario)
        await asyncio.to_thread(thread.join, 10)
    finally:
        listener.close()
    assert closed_after and closed_after[0] < 2

"""Real local servers for the prober tests, started once per run: HTTP/1.1, HTTPS (HTTP/2 via ALPN),
HTTP/3, and the test CA. The servers themselves are in tests/support/http_server.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import trustme

from tests.support.http_server import LocalServer, TLSMaterial
from tests.support.ports import free_port


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    ca = trustme.CA(organization_name="probe_exporter test CA")
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1", common_name="localhost")
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TLSMaterial(ca=ca, server_cert=cert, ca_file=ca_file)


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def http_server() -> Iterator[LocalServer]:
    """Plain HTTP/1.1 on 127.0.0.1."""
    server = LocalServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def https_server(tls_material: TLSMaterial) -> Iterator[LocalServer]:
    """HTTPS with ALPN h2 and http/1.1: a client offering h2 speaks HTTP/2."""
    server = LocalServer(tls_material.server_context(["h2", "http/1.1"]))
    yield server
    server.close()


@pytest.fixture(scope="session")
def https_h1_server(tls_material: TLSMaterial) -> Iterator[LocalServer]:
    """HTTPS that only speaks HTTP/1.1."""
    server = LocalServer(tls_material.server_context(["http/1.1"]))
    yield server
    server.close()


@pytest.fixture()
def refused_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    return free_port()


# --- HTTP/3 ----------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def http3_server(tls_material: TLSMaterial, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """https://127.0.0.1:PORT of an HTTP/3 (QUIC, UDP) server with the test CA's certificate.
    It answers every request 200 "ok"; /redirect answers 302 to /ok."""
    from aioquic.asyncio import QuicConnectionProtocol
    from aioquic.asyncio import serve as quic_serve
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import ProtocolNegotiated

    class H3Server(QuicConnectionProtocol):  # type: ignore[misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            self._h3: H3Connection | None = None

        def quic_event_received(self, event: object) -> None:
            if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
                self._h3 = H3Connection(self._quic)
            if self._h3 is None:
                return
            for h3_event in self._h3.handle_event(event):  # type: ignore[arg-type]
                if isinstance(h3_event, HeadersReceived):
                    stream = h3_event.stream_id
                    if dict(h3_event.headers).get(b":path") == b"/redirect":
                        self._h3.send_headers(stream, [(b":status", b"302"), (b"location", b"/ok"),
                                                       (b"content-length", b"0")], end_stream=True)
                    else:
                        self._h3.send_headers(stream, [(b":status", b"200"), (b"content-length", b"2")])
                        self._h3.send_data(stream, b"ok", end_stream=True)
                    self.transmit()

    directory = tmp_path_factory.mktemp("h3")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    tls_material.server_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    tls_material.server_cert.private_key_pem.write_to_path(str(key_file))
    configuration = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    configuration.load_cert_chain(cert_file, key_file)
    server = await quic_serve("127.0.0.1", 0, configuration=configuration, create_protocol=H3Server)
    port = server._transport.get_extra_info("sockname")[1]
    yield f"https://127.0.0.1:{port}"
    server.close()


# --- both HTTP exchange paths ----------------------------------------------------------------------


@pytest.fixture(params=["lean", "httpcore"])
def http_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs an HTTP test on the lean HTTP/1.1 exchange and again on httpcore (modules built in the test
    choose the path named here; proxies and HTTP/3 keep their own)."""
    from probe_exporter.probers.http import client

    previous = client.FORCED_PATH
    client.FORCED_PATH = None if request.param == "lean" else request.param
    try:
        yield str(request.param)
    finally:
        client.FORCED_PATH = previous

"""The shipped modules/network.yml: every module loads, and the ones a local server can answer work."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from probe_exporter.config import Module, load_config
from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.support.grpc_server import grpc_health_server
from tests.support.network_probe import label_sets, log_text, probe
from tests.support.paths import REPO
from tests.support.tcp_servers import (
    PKI,
    irc_server,
    make_pki,
    pg_ssl_server,
    send_lines,
    serve,
    ssh_banner,
    starttls_server,
)


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return dict(load_config([str(REPO / "modules" / "network.yml")]).modules)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_all_probers_covered(modules: dict[str, Module]) -> None:
    assert {m.prober for m in modules.values()} == {"tcp", "dns", "icmp", "grpc"}


async def test_ssh_modules(modules: dict[str, Module]) -> None:
    async with serve(ssh_banner) as port:
        banner = await probe(modules["ssh_banner"], f"127.0.0.1:{port}")
        extract = await probe(modules["ssh_banner_extract"], f"127.0.0.1:{port}")
        connect = await probe(modules["tcp_connect"], f"127.0.0.1:{port}")
    assert banner.success and extract.success and connect.success, log_text(extract)
    assert label_sets(extract, "probe_expect_info") == [{"ssh_version": "OpenSSH_9.2p1",
                                                         "ssh_comments": "Debian-2+deb12u3"}]


async def test_irc_banner(modules: dict[str, Module]) -> None:
    async with serve(irc_server) as port:
        outcome = await probe(modules["irc_banner"], f"127.0.0.1:{port}")
    assert outcome.success, log_text(outcome)


async def test_tls_modules(modules: dict[str, Module], pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """pop3s_banner (with the escaped `^\\+OK`), smtp_starttls and postgresql_ssl against local TLS servers."""
    monkeypatch.setenv("SSL_CERT_FILE", pki.ca_file)  # the modules use the system roots

    async def pop3(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send_lines(writer, "+OK POP3 ready")

    fresh = {name: modules[name].model_copy(deep=True) for name in ("pop3s_banner", "smtp_starttls",
                                                                     "postgresql_ssl", "tls_connect")}
    async with serve(pop3, ssl_context=pki.server_context()) as port:
        pop3s = await probe(fresh["pop3s_banner"], f"localhost:{port}")
        tls = await probe(fresh["tls_connect"], f"localhost:{port}")
    async with serve(starttls_server(pki.server_context())) as port:
        smtp = await probe(fresh["smtp_starttls"], f"localhost:{port}")
    async with serve(pg_ssl_server(pki.server_context())) as port:
        postgres = await probe(fresh["postgresql_ssl"], f"localhost:{port}")
    for outcome in (pop3s, tls, smtp, postgres):
        assert outcome.success, log_text(outcome)


async def test_icmp(modules: dict[str, Module]) -> None:
    v4 = await probe(modules["icmp"], "127.0.0.1")
    v6 = await probe(modules["icmp6"], "::1")
    assert v4.success and v6.success, log_text(v4) + log_text(v6)


async def test_grpc_plain(modules: dict[str, Module]) -> None:
    async with grpc_health_server() as server:
        outcome = await probe(modules["grpc_plain"], f"127.0.0.1:{server.port}")
    assert outcome.success, log_text(outcome)


async def test_through_the_probe_endpoint(pki: PKI, tmp_path: Path) -> None:
    """/probe passes `hostname` to the tcp prober (TLS server name) and debug=true shows the dialogue."""
    config = tmp_path / "network.yml"
    config.write_text(f"""modules:
  tls_ca:
    prober: tcp
    timeout: 2s
    tcp: {{preferred_ip_protocol: ip4, tls: true, tls_config: {{ca_file: "{pki.ca_file}"}},
           query_response: [{{expect: "^SSH-2.0-"}}]}}
""")

    async def tls_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send_lines(writer, "SSH-2.0-OpenSSH_9.2p1")

    app = create_app(Exporter(Settings(config_files=[str(config)])))
    async with serve(tls_banner, ssl_context=pki.server_context()) as port, LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://exporter") as client:
            target = {"module": "tls_ca", "target": f"127.0.0.1:{port}"}
            wrong = await client.get("/probe", params={**target, "hostname": "example.org"})
            right = await client.get("/probe", params={**target, "hostname": "localhost"})
            debug = await client.get("/probe", params={**target, "hostname": "localhost", "debug": "true"})
    assert wrong.status_code == right.status_code == 200
    assert "probe_success 0" in wrong.text
    assert "probe_success 1" in right.text
    assert 'probe_tls_version_info{version="TLS 1.3"} 1' in right.text
    assert "Regexp matched" in debug.text or "Read line" in debug.text

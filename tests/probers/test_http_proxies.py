"""SOCKS5 and HTTP CONNECT proxies for the HTTP prober, against real proxy servers started here:
socks5:// and socks5h://, proxy authentication, no_proxy, proxy_connect_header, and a proxy password
that shows nowhere."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.probers.test_http_client import TunnelProxy, tunnel_proxy  # noqa: F401 - the fixture
from tests.support.http_probe import probe
from tests.support.http_server import LocalServer, Resp, TLSMaterial
from tests.support.socks5_server import Socks5Server

PASSWORD = "s0cks-Pa55word-7d1e"


@pytest.fixture()
async def socks() -> AsyncIterator[Socks5Server]:
    server = await Socks5Server(username="prober", password=PASSWORD).start()
    yield server
    await server.close()


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_socks5_proxy_carries_plain_http(http_server: LocalServer, socks: Socks5Server, scheme: str) -> None:
    url = http_server.route(lambda req: Resp(body=b"through socks"))
    result = await probe(url, {"proxy_url": socks.url(scheme, f"prober:{PASSWORD}")})
    assert result.success, result.log
    assert result.value("probe_http_uncompressed_body_length") == len(b"through socks")
    (request,) = socks.requests
    assert (request.username, request.host, request.port) == ("prober", "127.0.0.1", http_server.port)
    # spoken as SOCKS5, not as an HTTP proxy: the server got an origin-form request
    (seen,) = http_server.seen(url)
    assert seen.path == "/"


async def test_socks5h_hands_the_name_to_the_proxy(http_server: LocalServer, socks: Socks5Server) -> None:
    """A name only the proxy knows: with the resolve phase skipped, the proxy resolves it."""
    socks.names["behind-the-proxy.invalid"] = "127.0.0.1"
    route = http_server.route(lambda req: Resp())
    url = route.replace("127.0.0.1", "behind-the-proxy.invalid")
    result = await probe(url, {"proxy_url": socks.url("socks5h", f"prober:{PASSWORD}"),
                               "skip_resolve_phase_with_proxy": True})
    assert result.success, result.log
    assert [r.host for r in socks.requests] == ["behind-the-proxy.invalid"]
    assert http_server.seen(route)[0].host == f"behind-the-proxy.invalid:{http_server.port}"


async def test_socks5_proxy_tunnels_https(https_h1_server: LocalServer, tls_material: TLSMaterial,
                                          socks: Socks5Server) -> None:
    url = https_h1_server.route(lambda req: Resp())
    result = await probe(url, {"proxy_url": socks.url("socks5", f"prober:{PASSWORD}"),
                               "tls_config": {"ca_file": str(tls_material.ca_file)}})
    assert result.success, result.log
    assert result.value("probe_http_ssl") == 1
    assert [(r.host, r.port) for r in socks.requests] == [("127.0.0.1", https_h1_server.port)]


async def test_socks5_wrong_password_fails_without_showing_it(http_server: LocalServer,
                                                              socks: Socks5Server) -> None:
    url = http_server.route(lambda req: Resp())
    result = await probe(url, {"proxy_url": socks.url("socks5", "prober:wrong-Pa55word-9")})
    assert not result.success
    assert socks.refused_logins == 1 and socks.requests == []
    assert http_server.seen(url) == []
    assert "wrong-Pa55word-9" not in result.log


@pytest.mark.parametrize("kind", ["socks5", "connect"])
async def test_no_proxy_is_honoured(http_server: LocalServer, socks: Socks5Server, tunnel_proxy: TunnelProxy,  # noqa: F811
                                    kind: str) -> None:
    """Names only the proxy can reach: one in no_proxy goes direct (and fails to resolve), one outside
    it goes through the proxy."""
    socks.names["proxied.invalid"] = "127.0.0.1"
    proxy_url = socks.url("socks5h", f"prober:{PASSWORD}") if kind == "socks5" else tunnel_proxy.url
    route = http_server.route(lambda req: Resp())
    http = {"proxy_url": proxy_url, "no_proxy": "direct.invalid,.elsewhere.invalid",
            "skip_resolve_phase_with_proxy": True}
    direct = await probe(route.replace("127.0.0.1", "direct.invalid").replace("http://", "https://"), http)
    sub = await probe(route.replace("127.0.0.1", "a.elsewhere.invalid").replace("http://", "https://"), http)
    assert not direct.success and not sub.success
    assert socks.requests == [] and tunnel_proxy.connects == []
    if kind == "socks5":
        proxied = await probe(route.replace("127.0.0.1", "proxied.invalid"), http)
        assert proxied.success, proxied.log
        assert [r.host for r in socks.requests] == ["proxied.invalid"]


async def test_connect_proxy_sends_proxy_connect_header(https_h1_server: LocalServer, tls_material: TLSMaterial,
                                                        tunnel_proxy: TunnelProxy) -> None:  # noqa: F811
    url = https_h1_server.route(lambda req: Resp())
    result = await probe(url, {"proxy_url": tunnel_proxy.url,
                               "proxy_connect_header": {"X-Proxy-Token": ["t0k", "second"]},
                               "tls_config": {"ca_file": str(tls_material.ca_file)}})
    assert result.success, result.log
    target, headers = tunnel_proxy.connects[0]
    assert target == url.split("/")[2]
    assert headers["x-proxy-token"] in ("t0k", "second")


async def test_unknown_proxy_scheme_fails_the_probe(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp())
    result = await probe(url, {"proxy_url": "ftp://127.0.0.1:1"})
    assert not result.success
    assert "unknown proxy scheme 'ftp'" in result.log
    assert http_server.seen(url) == []


async def test_proxy_password_appears_nowhere(tmp_path: Path, http_server: LocalServer, socks: Socks5Server,
                                              caplog: pytest.LogCaptureFixture) -> None:
    url = http_server.route(lambda req: Resp())
    config = tmp_path / "proxied.yml"
    proxy_url = socks.url("socks5", f"prober:{PASSWORD}")
    config.write_text("modules:\n"
                      f"  socks:\n    prober: http\n    http:\n      proxy_url: {proxy_url}\n"
                      f"  socks_bad:\n    prober: http\n    http:\n"
                      f"      proxy_url: socks5://prober:{PASSWORD}@127.0.0.1:1\n")
    app = create_app(Exporter(Settings(config_files=[str(config)], log_level="debug")))
    caplog.set_level(logging.DEBUG)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://exporter") as client:
            shown = []
            for module in ("socks", "socks_bad"):
                response = await client.get("/probe", params={"module": module, "target": url, "debug": "true"})
                assert response.status_code == 200
                assert "Module configuration:" in response.text
                shown.append(response.text)
            assert "probe_success 1" in shown[0] and "probe_success 0" in shown[1]
            assert "Error for HTTP request" in shown[1]
            logs = await client.get("/logs", params={"target": url})
            assert logs.status_code == 200 and "Beginning probe" in logs.text
            shown.append(logs.text)
            for path in ("/config", "/"):
                page = await client.get(path)
                assert page.status_code == 200
                shown.append(page.text)
            assert "proxy_url: socks5://prober:" in shown[-2]  # /config shows the setting, password masked
    shown.append(caplog.text)
    assert len(socks.requests) == 1
    for text in shown:
        assert PASSWORD not in text

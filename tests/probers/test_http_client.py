"""prometheus/common HTTPClientConfig options of the HTTP prober: proxies and OAuth2."""

from __future__ import annotations

import base64
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator

import pytest

from probe_exporter.config.blackbox import ProxyConfig
from probe_exporter.probers.http.client import ProxyChoice
from tests.support.http_probe import http_module, probe
from tests.support.http_server import LocalServer, Req, Resp, TLSMaterial

# Every case runs on both exchange paths (the lean HTTP/1.1 one and httpcore).
pytestmark = pytest.mark.usefixtures("http_path")


class TunnelProxy:
    """A CONNECT-only proxy on 127.0.0.1 that remembers what it was asked to tunnel to."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connects: list[tuple[str, dict[str, str]]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            reader = client.makefile("rb")
            method, target, _ = reader.readline().decode().split(" ", 2)
            headers = {}
            while (line := reader.readline().decode().strip()):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.connects.append((target, headers))
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, _, port = target.rpartition(":")
            with socket.create_connection((host.strip("[]"), int(port))) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
                _pipe(client, upstream)

    def close(self) -> None:
        self.listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


@pytest.fixture()
def tunnel_proxy() -> Iterator[TunnelProxy]:
    proxy = TunnelProxy()
    yield proxy
    proxy.close()


# --- proxies ---------------------------------------------------------------------------------------


async def test_proxy_url_forwards_plain_http(http_server: LocalServer, refused_port: int) -> None:
    """The proxy gets the absolute URL; the target itself (a closed port) is never contacted."""
    proxy_route = http_server.route(lambda req: Resp(body=b"via proxy"))
    prefix = proxy_route.rsplit("/", 1)[1]
    target = f"http://127.0.0.1:{refused_port}/{prefix}"
    result = await probe(target, {"proxy_url": http_server.base})
    assert result.success, result.log
    assert result.value("probe_http_uncompressed_body_length") == len(b"via proxy")
    assert http_server.seen(proxy_route)[0].host == f"127.0.0.1:{refused_port}"


async def test_proxy_url_tunnels_https(https_h1_server: LocalServer, tls_material: TLSMaterial,
                                       tunnel_proxy: TunnelProxy) -> None:
    url = https_h1_server.route(lambda req: Resp())
    proxy = tunnel_proxy.url.replace("http://", "http://user:pa%20ss@")
    result = await probe(url, {"proxy_url": proxy, "proxy_connect_header": {"X-Proxy-Token": ["t0k"]},
                               "tls_config": {"ca_file": str(tls_material.ca_file)}})
    assert result.success, result.log
    assert result.value("probe_http_ssl") == 1
    target, headers = tunnel_proxy.connects[0]
    assert target == url.split("/")[2]
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"user:pa ss").decode()
    assert headers["x-proxy-token"] == "t0k"


async def test_unreachable_proxy_fails(http_server: LocalServer, refused_port: int) -> None:
    url = http_server.route(lambda req: Resp())
    result = await probe(url, {"proxy_url": f"http://127.0.0.1:{refused_port}"})
    assert not result.success
    assert http_server.seen(url) == []


async def test_no_proxy_skips_the_proxy(http_server: LocalServer, refused_port: int) -> None:
    url = http_server.route(lambda req: Resp())
    # With no_proxy, Go's httpproxy rules apply, and they never proxy loopback targets.
    result = await probe(url, {"proxy_url": f"http://127.0.0.1:{refused_port}", "no_proxy": "example.com"})
    assert result.success, result.log


async def test_proxy_from_environment(http_server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy_route = http_server.route(lambda req: Resp(body=b"env proxy"))
    prefix = proxy_route.rsplit("/", 1)[1]
    monkeypatch.setenv("HTTP_PROXY", http_server.base)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    # An unresolvable name: only the proxy can reach it, so resolution must be skipped.
    result = await probe(f"http://target.invalid/{prefix}",
                         {"proxy_from_environment": True, "skip_resolve_phase_with_proxy": True})
    assert result.success, result.log
    assert http_server.seen(proxy_route)[0].host == "target.invalid"
    monkeypatch.setenv("NO_PROXY", ".invalid")
    result = await probe(f"http://target.invalid/{prefix}",
                         {"proxy_from_environment": True, "skip_resolve_phase_with_proxy": True})
    assert not result.success


@pytest.mark.parametrize(("no_proxy", "scheme", "host", "port", "proxied"), [
    ("", "http", "example.com", 80, True),
    ("*", "http", "example.com", 80, False),
    ("example.com", "http", "example.com", 80, False),
    ("example.com", "http", "www.example.com", 80, False),
    (".example.com", "http", "example.com", 80, True),
    (".example.com", "http", "www.example.com", 80, False),
    ("*.example.com", "http", "www.example.com", 80, False),
    ("example.com:8080", "http", "example.com", 80, True),
    ("example.com:8080", "http", "example.com", 8080, False),
    ("10.0.0.0/8", "http", "10.1.2.3", 80, False),
    ("10.0.0.0/8", "http", "11.1.2.3", 80, True),
    ("192.0.2.1", "https", "192.0.2.1", 443, False),
    ("other.org", "http", "localhost", 80, False),
    ("other.org", "http", "127.0.0.2", 80, False),
    ("other.org", "http", "::1", 80, False),
])
def test_no_proxy_rules(no_proxy: str, scheme: str, host: str, port: int, proxied: bool) -> None:
    choice = ProxyChoice(ProxyConfig(proxy_url="http://proxy:3128", no_proxy=no_proxy or None))
    assert bool(choice.proxy_for(scheme, host, port)) is proxied


def test_plain_proxy_url_proxies_loopback_too() -> None:
    choice = ProxyChoice(ProxyConfig(proxy_url="http://proxy:3128"))
    assert choice.proxy_for("http", "127.0.0.1", 80) == "http://proxy:3128"


def test_proxy_environment_per_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://plain:1")
    monkeypatch.setenv("HTTPS_PROXY", "http://secure:2")
    monkeypatch.setenv("NO_PROXY", "skip.example")
    choice = ProxyChoice(ProxyConfig(proxy_from_environment=True))
    assert choice.proxy_for("http", "a.example", 80) == "http://plain:1"
    assert choice.proxy_for("https", "a.example", 443) == "http://secure:2"
    assert choice.proxy_for("https", "skip.example", 443) == ""


@pytest.mark.parametrize(("http", "error"), [
    ({"no_proxy": "x"}, "if no_proxy is configured, proxy_url must also be configured"),
    ({"proxy_from_environment": True, "proxy_url": "http://p:1"}, "if proxy_from_environment is configured"),
])
def test_proxy_config_validation(http: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        http_module(http)


# --- OAuth2 ----------------------------------------------------------------------------------------


async def test_oauth2_client_credentials(http_server: LocalServer, tmp_path: object) -> None:
    token_requests: list[Req] = []

    def token_endpoint(req: Req) -> Resp:
        token_requests.append(req)
        form = dict(urllib.parse.parse_qsl(req.body.decode()))
        expected = "Basic " + base64.b64encode(b"probe-client:s3cret").decode()
        if req.header("Authorization") != expected or form.get("grant_type") != "client_credentials":
            return Resp(status=401)
        body = {"access_token": "tok-" + form.get("scope", ""), "token_type": "bearer", "expires_in": 3600}
        return Resp(headers=[("Content-Type", "application/json")], body=json.dumps(body).encode())

    token_url = http_server.route(token_endpoint)
    target = http_server.route(lambda req: Resp(status=200 if req.header("Authorization") == "Bearer tok-a b"
                                                else 403))
    module = http_module({"oauth2": {"client_id": "probe-client", "client_secret": "s3cret", "scopes": ["a", "b"],
                                     "token_url": token_url, "endpoint_params": {"audience": "x"}}})
    first = await probe(target, module=module)
    assert first.success, first.log
    assert "s3cret" not in first.log
    form = dict(urllib.parse.parse_qsl(token_requests[0].body.decode()))
    assert form == {"grant_type": "client_credentials", "scope": "a b", "audience": "x"}
    # the token is reused until it expires
    assert (await probe(target, module=module)).success
    assert len(token_requests) == 1


async def test_oauth2_token_failure_fails_the_probe(http_server: LocalServer) -> None:
    token_url = http_server.route(lambda req: Resp(status=500))
    target = http_server.route(lambda req: Resp())
    result = await probe(target, {"oauth2": {"client_id": "c", "client_secret": "s", "token_url": token_url}})
    assert not result.success
    assert http_server.seen(target) == []
    assert result.value("probe_http_status_code") == 0


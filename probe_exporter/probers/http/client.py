"""What an HTTP module builds once and reuses for every probe: the exchange path, SSL context,
network backend, proxy choice, static headers, credentials and the OAuth2 token cache
(prometheus/common's HTTPClientConfig, as blackbox's http prober uses it).

Each probe hop gets a connection of its own, never a pooled one: blackbox disables keep-alive, and a
shared HTTP/2 connection would hide connect/TLS time and reuse another probe's SNI.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import json
import logging
import os
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpcore
import httpx

from probe_exporter.config.blackbox import HTTPProbe, OAuth2, ProxyConfig
from probe_exporter.config.tls import TLSConfig
from probe_exporter.masking import SECRET_HEADER_NAMES
from probe_exporter.probers.http.exchange import HopRequest, HopResponse, core_exchange
from probe_exporter.probers.http.lean import lean_exchange
from probe_exporter.probers.http.stream import AsyncioBackend
from probe_exporter.probers.net.hostport import ip_literal

USER_AGENT = "Blackbox-Exporter/0.28.0"
# httpcore's SOCKS trace logs the proxy's username and password (`auth=(b'user', b'password')`) at
# debug level: never let those lines out, whatever level someone sets on the libraries' loggers.
logging.getLogger("httpcore.socks").setLevel(logging.INFO)

# crypto/tls defaultCipherSuites (Go 1.23+, AES hardware), by their OpenSSL names. TLS 1.3 suites are
# not configurable from Python's ssl module and keep OpenSSL's order.
GO_TLS12_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
))


def canonical_header_key(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey: `accept-language` -> `Accept-Language`."""
    if not name or any(c in name for c in " \t\r\n:"):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


# Headers that carry credentials whatever block sets them (the masking rules' list): never sent to an
# origin other than the first unless the module sets follow_redirects_with_credentials.
CREDENTIAL_HEADERS = frozenset(canonical_header_key(name).encode() for name in SECRET_HEADER_NAMES)


def read_secret_file(path: str) -> str:
    """prometheus/common reads *_file credentials at request time and trims surrounding whitespace."""
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


# --- proxies ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NoProxyRule:
    host: str = ""  # "" for an IP/CIDR rule
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int = 0
    subdomains_only: bool = False


def _parse_no_proxy(value: str) -> tuple[bool, list[_NoProxyRule]]:
    """golang.org/x/net/http/httpproxy NO_PROXY syntax: `*`, IPs, CIDRs, `[.]domain[:port]`."""
    rules: list[_NoProxyRule] = []
    for raw in value.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True, []
        try:
            rules.append(_NoProxyRule(network=ipaddress.ip_network(entry, strict=False)))
            continue
        except ValueError:
            pass
        host, port = entry, 0
        if entry.startswith("[") and "]" in entry:
            host, _, rest = entry[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 0
        elif entry.count(":") == 1:
            host, _, port_text = entry.partition(":")
            port = int(port_text) if port_text.isdigit() else 0
        try:
            rules.append(_NoProxyRule(network=ipaddress.ip_network(host), port=port))
            continue
        except ValueError:
            pass
        subdomains_only = host.startswith(".") or host.startswith("*.")
        host = host.lstrip("*").lstrip(".")
        rules.append(_NoProxyRule(host=host, port=port, subdomains_only=subdomains_only))
    return False, rules


class ProxyChoice:
    """Which proxy (if any) a request URL goes through: `proxy_url` [+ `no_proxy`] or the environment."""

    def __init__(self, cfg: ProxyConfig) -> None:
        self.http_proxy = self.https_proxy = ""
        self.skip_all = False
        self.rules: list[_NoProxyRule] = []
        # httpproxy's rules (and its localhost/loopback exemption) apply to no_proxy and the environment;
        # a bare proxy_url proxies everything.
        self.use_rules = False
        if cfg.proxy_from_environment:
            # Go reads these once per process; per module is close enough.
            self.http_proxy = os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy") or ""
            self.https_proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or ""
            self.skip_all, self.rules = _parse_no_proxy(os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "")
            self.use_rules = True
        elif cfg.proxy_url:
            self.http_proxy = self.https_proxy = cfg.proxy_url
            if cfg.no_proxy:
                self.skip_all, self.rules = _parse_no_proxy(cfg.no_proxy)
                self.use_rules = True

    @property
    def configured(self) -> bool:
        return bool(self.http_proxy or self.https_proxy)

    def proxy_for(self, scheme: str, host: str, port: int) -> str:
        """The proxy URL for a request, or "" to connect directly."""
        proxy = self.https_proxy if scheme == "https" else self.http_proxy
        if not proxy or not self.use_rules:
            return proxy
        if self.skip_all:
            return ""
        host = host.lower().strip("[]")
        if host == "localhost":
            return ""
        address = ip_literal(host)
        if address is not None and address.is_loopback:
            return ""
        for rule in self.rules:
            if rule.port and rule.port != port:
                continue
            if rule.network is not None:
                if address is not None and address in rule.network:
                    return ""
                continue
            if host == rule.host and not rule.subdomains_only:
                return ""
            if host.endswith("." + rule.host):
                return ""
        return proxy


# --- OAuth2 client credentials ---------------------------------------------------------------------


class OAuth2Error(Exception):
    pass


class OAuth2Tokens:
    """golang.org/x/oauth2/clientcredentials: POST grant_type=client_credentials to token_url.

    Upstream builds a new token source per probe; we keep the token until shortly before it expires,
    which the target cannot tell apart and which spares the token server.
    """

    def __init__(self, cfg: OAuth2) -> None:
        if cfg.grant_type not in (None, "", "client_credentials"):
            raise OAuth2Error(f"oauth2 grant_type {cfg.grant_type!r} is not supported")
        self.cfg = cfg
        self._token: str = ""
        self._token_type: str = "Bearer"
        self._expires = 0.0
        self._client: httpx.AsyncClient | None = None
        self._lock = asyncio.Lock()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            proxy = self.cfg.proxy_url or None
            self._client = httpx.AsyncClient(verify=self.cfg.tls_config.ssl_context(), proxy=proxy,
                                             trust_env=self.cfg.proxy_from_environment, follow_redirects=False)
        return self._client

    def _secret(self) -> str:
        if self.cfg.client_secret:
            return self.cfg.client_secret.reveal()
        if self.cfg.client_secret_file:
            return read_secret_file(self.cfg.client_secret_file)
        return ""

    async def header(self) -> str:
        if self._token and time.monotonic() < self._expires:
            return f"{self._token_type} {self._token}"
        async with self._lock:  # concurrent probes share one refresh
            if self._token and time.monotonic() < self._expires:
                return f"{self._token_type} {self._token}"
            return await self._fetch()

    async def _fetch(self) -> str:
        now = time.monotonic()
        form = {"grant_type": "client_credentials"}
        if self.cfg.scopes:
            form["scope"] = " ".join(self.cfg.scopes)
        for key, value in (self.cfg.endpoint_params or {}).items():
            form[key] = value
        client_id = urllib.parse.quote_plus(self.cfg.client_id or "")
        secret = urllib.parse.quote_plus(self._secret())
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        try:
            response = await self._http().post(self.cfg.token_url or "", data=form,
                                               headers={"Authorization": f"Basic {basic}"})
            if response.status_code >= 300:
                # AuthStyleAutoDetect: retry with the credentials in the form.
                form2 = {**form, "client_id": self.cfg.client_id or "", "client_secret": self._secret()}
                response = await self._http().post(self.cfg.token_url or "", data=form2)
        except httpx.HTTPError as err:
            raise OAuth2Error(f"oauth2: cannot fetch token: {type(err).__name__}: {err}") from None
        if response.status_code >= 300:
            raise OAuth2Error(f"oauth2: cannot fetch token: {response.status_code}")
        try:
            if "json" in response.headers.get("content-type", "") or response.content[:1] == b"{":
                data = json.loads(response.content)
            else:
                data = dict(urllib.parse.parse_qsl(response.text))
        except ValueError:
            raise OAuth2Error("oauth2: cannot parse token response") from None
        token = str(data.get("access_token") or "")
        if not token:
            raise OAuth2Error("oauth2: server response missing access_token")
        token_type = str(data.get("token_type") or "Bearer")
        # x/oauth2's Token.Type(): bearer, mac and basic are normalised; anything else is kept.
        self._token_type = {"bearer": "Bearer", "mac": "MAC", "basic": "Basic"}.get(token_type.lower(), token_type)
        self._token = token
        try:
            expires_in = float(data.get("expires_in") or 0)
        except (TypeError, ValueError):
            expires_in = 0.0
        # No expiry: reuse until a new probe after a short while, like a cache with expiryDelta 10s.
        self._expires = now + (expires_in - 10 if expires_in > 10 else 0)
        return f"{self._token_type} {self._token}"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


# --- the exchange path ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExchangePath:
    """How a module's hops are made, chosen once per module (its debug output names it)."""

    name: str  # "lean", "httpcore" or "http3"
    reason: str


# Differential tests run every module that may take either path on the one named here; None: each
# module's own choice.
FORCED_PATH: str | None = None


def choose_path(cfg: HTTPProbe) -> ExchangePath:
    if cfg.enable_http3:
        return ExchangePath("http3", "enable_http3: HTTP/3 over QUIC (aioquic)")
    if cfg.proxy_url or cfg.proxy_from_environment:
        return ExchangePath("httpcore", "a proxy is configured: httpcore goes through it (HTTP forwarding and "
                                        "CONNECT, or SOCKS5)")
    if FORCED_PATH == "httpcore":
        return ExchangePath("httpcore", "forced (differential test)")
    if cfg.enable_http2:
        return ExchangePath("lean", "no proxy, no HTTP/3: HTTP/1.1 on asyncio and httptools; an https server "
                                    "that picks h2 by ALPN goes on on httpcore's HTTP/2 connection")
    return ExchangePath("lean", "no proxy, no HTTP/3, HTTP/2 disabled: HTTP/1.1 on asyncio and httptools")


# --- the per-module client -------------------------------------------------------------------------


class ModuleClient:
    """Everything about an `http:` block that does not change between probes."""

    def __init__(self, cfg: HTTPProbe) -> None:
        self.cfg = cfg
        self.path = choose_path(cfg)
        self.backend: httpcore.AsyncNetworkBackend = AsyncioBackend()
        self._ssl_context: ssl.SSLContext | None = None
        tls = cfg.tls_config
        self.tls_material_configured = any((tls.ca, tls.ca_file, tls.cert, tls.cert_file, tls.key, tls.key_file))
        self.http2 = cfg.enable_http2
        self.proxy = ProxyChoice(cfg)
        self._proxy_pools: dict[str, httpcore.AsyncHTTPProxy | httpcore.AsyncSOCKSProxy] = {}
        self.host_header: str | None = None
        headers: list[tuple[bytes, bytes]] = []
        has_user_agent = False
        for name, value in cfg.headers.items():
            key = canonical_header_key(name)
            if key == "Host":
                self.host_header = value
                continue
            if key == "User-Agent":
                has_user_agent = True
            headers.append((key.encode(), value.encode()))
        if not has_user_agent:
            headers.insert(0, (b"User-Agent", USER_AGENT.encode()))
        self.headers = headers
        # common's auth round trippers leave a request alone that already has an Authorization header.
        self.user_sets_authorization = any(k == b"Authorization" for k, _ in headers)
        # What stays behind on a redirect to another origin: the names above, and http_headers whose
        # values come from secrets or files.
        self.credential_headers = CREDENTIAL_HEADERS | {
            canonical_header_key(name).encode() for name, header in (cfg.http_headers or {}).items()
            if header.secrets or header.files}
        self.compression = cfg.compression.lower()
        self.oauth2 = OAuth2Tokens(cfg.oauth2) if cfg.oauth2 is not None else None
        self._static_auth: list[tuple[bytes, bytes]] | None = None
        self.auth_reads_files = bool(
            (cfg.basic_auth and (cfg.basic_auth.username_file or cfg.basic_auth.password_file))
            or (cfg.authorization and cfg.authorization.credentials_file)
            or cfg.bearer_token_file
            or any(h.files for h in (cfg.http_headers or {}).values()))

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """Built on the first https request (loading the system roots costs milliseconds), then reused."""
        if self._ssl_context is None:
            context = self.cfg.tls_config.ssl_context()
            # Offer TLS 1.2 suites in Go's default order, so a server that follows the client's
            # preference picks what it would pick for blackbox_exporter (probe_tls_cipher_info).
            context.set_ciphers(GO_TLS12_CIPHERS)
            # What httpcore offers too (it sets the list again on each of its connections).
            context.set_alpn_protocols(["http/1.1", "h2"] if self.http2 else ["http/1.1"])
            self._ssl_context = context
        return self._ssl_context

    async def auth_headers(self) -> list[tuple[bytes, bytes]]:
        """Authorization and http_headers for one request (files re-read each time, like common)."""
        if self._static_auth is not None:
            return self._static_auth
        headers: list[tuple[bytes, bytes]] = []
        cfg = self.cfg
        authorization = ""
        if cfg.basic_auth is not None:
            auth = cfg.basic_auth
            user = auth.username or (read_secret_file(auth.username_file) if auth.username_file else "")
            password = (auth.password.reveal() if auth.password else
                        read_secret_file(auth.password_file) if auth.password_file else "")
            authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        elif cfg.authorization is not None:
            auth2 = cfg.authorization
            credentials = (auth2.credentials.reveal() if auth2.credentials else
                           read_secret_file(auth2.credentials_file) if auth2.credentials_file else "")
            authorization = f"{auth2.type} {credentials}"
        elif cfg.bearer_token or cfg.bearer_token_file:
            token = cfg.bearer_token.reveal() if cfg.bearer_token else read_secret_file(cfg.bearer_token_file or "")
            authorization = f"Bearer {token}"
        elif self.oauth2 is not None:
            authorization = await self.oauth2.header()
        if authorization:
            headers.append((b"Authorization", authorization.encode()))
        for name, header in (cfg.http_headers or {}).items():
            key = canonical_header_key(name).encode()
            values = list(header.values or []) + [s.reveal() for s in header.secrets or []]
            values += [read_secret_file(path) for path in header.files or []]
            headers.extend((key, v.encode()) for v in values)
        if not self.auth_reads_files and self.oauth2 is None:
            self._static_auth = headers
        return headers

    def connect(self, scheme: str, host: str,
                port: int) -> httpcore.AsyncHTTPConnection | httpcore.AsyncHTTPProxy | httpcore.AsyncSOCKSProxy:
        """A fresh connection for one hop (direct or through the configured proxy)."""
        if self.cfg.enable_http3:
            from probe_exporter.probers.http.http3 import HTTP3Connection

            return HTTP3Connection(host, port, self.cfg.tls_config, self.ssl_context)  # type: ignore[return-value]
        proxy = self.proxy.proxy_for(scheme, host, port) if self.proxy.configured else ""
        if proxy:
            pool = self._proxy_pools.get(proxy)
            if pool is None:
                pool = self._proxy_pools[proxy] = _proxy_pool(proxy, self.cfg, self.ssl_context, self.backend)
            return pool
        origin = httpcore.Origin(scheme.encode(), host.encode(), port)
        return httpcore.AsyncHTTPConnection(origin=origin, ssl_context=self.ssl_context if scheme == "https" else None,
                                            http1=True, http2=self.http2 and scheme == "https",
                                            network_backend=self.backend)

    def exchange_for(self, scheme: str, host: str, port: int) -> Callable[[HopRequest], Awaitable[HopResponse]]:
        """How one hop to scheme://host:port is made: the lean exchange, or on httpcore's (or HTTP/3's)
        connection of its own, or through the configured proxy's pool."""
        if self.path.name == "lean":
            return functools.partial(lean_exchange, ssl_context=self.ssl_context if scheme == "https" else None)
        connection = self.connect(scheme, host, port)
        owns = not isinstance(connection, (httpcore.AsyncHTTPProxy, httpcore.AsyncSOCKSProxy))
        return functools.partial(core_exchange, connection, owns)

    async def aclose(self) -> None:
        for pool in self._proxy_pools.values():
            await pool.aclose()
        if self.oauth2 is not None:
            await self.oauth2.aclose()


# Proxy URL schemes, as Go's http.Transport takes them: an HTTP proxy (forwarding http://, CONNECT for
# https://) reached over plain TCP or TLS, or SOCKS5. Go sends the host name to a SOCKS5 proxy for both
# socks5 and socks5h (the proxy resolves it); so does httpcore's SOCKS client.
_HTTP_PROXY_SCHEMES = ("http", "https")
_SOCKS_PROXY_SCHEMES = ("socks5", "socks5h")


def _proxy_pool(proxy: str, cfg: HTTPProbe, ssl_context: ssl.SSLContext,
                backend: httpcore.AsyncNetworkBackend) -> httpcore.AsyncHTTPProxy | httpcore.AsyncSOCKSProxy:
    url = httpx.URL(proxy if "://" in proxy else "http://" + proxy)
    auth = (urllib.parse.unquote(url.username), urllib.parse.unquote(url.password)) if url.username else None
    if url.scheme in _SOCKS_PROXY_SCHEMES:
        # proxy_connect_header has no place in SOCKS5 (Go sends it on CONNECT only).
        socks = url.copy_with(scheme="socks5", username=None, password=None)
        return httpcore.AsyncSOCKSProxy(proxy_url=str(socks), proxy_auth=auth, ssl_context=ssl_context,
                                        max_connections=None, max_keepalive_connections=0, http2=cfg.enable_http2,
                                        network_backend=backend)
    if url.scheme not in _HTTP_PROXY_SCHEMES:
        raise ValueError(f"proxyconnect: unknown proxy scheme {url.scheme!r}")
    headers = [(name.encode(), value.reveal().encode())
               for name, values in (cfg.proxy_connect_header or {}).items() for value in values]
    proxy_ssl = TLSConfig().ssl_context() if url.scheme == "https" else None
    bare = url.copy_with(username=None, password=None)
    return httpcore.AsyncHTTPProxy(proxy_url=str(bare), proxy_auth=auth, proxy_headers=headers or None,
                                   ssl_context=ssl_context, proxy_ssl_context=proxy_ssl, max_connections=None,
                                   max_keepalive_connections=0, http2=cfg.enable_http2, network_backend=backend)

"""Building a hop's request and following a redirect as Go's http.Client does: the Host header, the
Location, Referer, credentials kept or dropped, and the per-probe cookie jar."""

from __future__ import annotations

import base64
import urllib.parse

import httpx

from probe_exporter.config.blackbox import HTTPProbe
from probe_exporter.probers.http.client import ModuleClient


def configured_host(cfg: HTTPProbe) -> str | None:
    for name, value in cfg.headers.items():
        if name.lower() == "host":
            return value
    return None


async def request_headers(client: ModuleClient, host_header: str, userinfo: bytes | None,
                           cross_host: bool, credentials: bool = True) -> list[tuple[bytes, bytes]]:
    """A hop's headers; `credentials` False (another origin than the first, no opt-in) leaves out every
    credential: the configured auth, userinfo and Authorization-like headers from any block."""
    headers = [(b"Host", host_header.encode())]
    if not credentials:
        headers += [h for h in client.headers if h[0] not in client.credential_headers]
        if client.cfg.http_headers:
            headers += [h for h in await client.auth_headers() if h[0] not in client.credential_headers]
        return headers
    configured = await client.auth_headers()
    if cross_host:
        # Go's client drops the user's Authorization and Cookie headers on a redirect to another
        # host; the configured credentials (common's round trippers) are added again.
        headers += [h for h in client.headers if h[0] not in (b"Authorization", b"Cookie")]
        headers += configured
    elif client.user_sets_authorization:
        headers += client.headers
        headers += [h for h in configured if h[0] != b"Authorization"]
    else:
        headers += client.headers
        headers += configured
    if userinfo and not any(k == b"Authorization" for k, _ in headers):
        headers.append((b"Authorization", userinfo))
    return headers


def request_target(path: str, query: str) -> str:
    # Go escapes what must be escaped in the path and sends the query as given.
    target = urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~%") or "/"
    return f"{target}?{query}" if query else target


def basic_from_userinfo(parts: urllib.parse.SplitResult) -> bytes | None:
    """Go's client turns user:password@ in the URL into basic auth when no Authorization is set."""
    if parts.username is None:
        return None
    raw = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    return b"Basic " + base64.b64encode(raw.encode())


class Location:
    __slots__ = ("host_header", "hostname", "location", "path", "port", "scheme", "wire_host")

    def __init__(self, scheme: str, wire_host: str, hostname: str, port: int, path: str, host_header: str,
                 location: str = "") -> None:
        self.scheme, self.wire_host, self.hostname = scheme, wire_host, hostname
        self.port, self.path, self.host_header = port, path, host_header
        self.location = location  # the Location header as sent


def next_location(current_url: str, location: str, first_host_header: str, first_wire_host: str) -> Location:
    """Where a redirect goes. A relative Location keeps the first request's Host header when that
    differed from its URL host (Go issue 22233) - which is always the case after address resolution."""
    target = urllib.parse.urljoin(current_url, location)
    parts = urllib.parse.urlsplit(target)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported protocol scheme {parts.scheme!r}")
    hostname = parts.hostname or ""
    if not hostname:
        raise ValueError("no host in request URL")
    wire_host = parts.netloc.rpartition("@")[2]
    port = parts.port or (443 if scheme == "https" else 80)
    relative = not urllib.parse.urlsplit(location).scheme
    host_header = first_host_header if (relative and first_host_header != first_wire_host) else wire_host
    return Location(scheme, wire_host, hostname, port, request_target(parts.path, parts.query), host_header,
                    location)


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL: what credentials are bound to."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower().removesuffix("."), parts.port or (443 if scheme == "https" else 80)


def strip_userinfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def same_or_subdomain(host: str, first: str) -> bool:
    host, first = host.lower(), first.lower()
    return host == first or host.endswith("." + first)


def cookie_header(cookies: httpx.Cookies, method: str, url: str) -> str:
    probe = httpx.Request(method, url)
    cookies.set_cookie_header(probe)
    return str(probe.headers.get("cookie", ""))


def store_cookies(cookies: httpx.Cookies, method: str, url: str, headers: list[tuple[bytes, bytes]]) -> None:
    try:
        response = httpx.Response(200, headers=headers, request=httpx.Request(method, url))
        cookies.extract_cookies(response)
    except Exception:  # a malformed Set-Cookie is ignored, as Go's jar does
        pass


"""The HTTP prober: blackbox_exporter's prober/http.go, step by step.

probe_http prepares the first hop (target URL, Host header, address, TLS settings, body), follows the
chain of redirects as Go's http.Client does (one connection per hop: blackbox disables keep-alive), and
hands the response that ends the chain to verdict.judge, the one place that decides success.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from probe_exporter.config.blackbox import HTTPProbe
from probe_exporter.config.module import Module
from probe_exporter.limits import TargetPolicy, target_policy
from probe_exporter.logs import ProbeLog, mask_target
from probe_exporter.modulecache import CacheKey
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.probers.base import BadRequest, ProbeContext
from probe_exporter.probers.http import body as http_body
from probe_exporter.probers.http import hops
from probe_exporter.probers.http.client import ModuleClient
from probe_exporter.probers.http.exchange import HopRequest, HopResponse, describe
from probe_exporter.probers.http.timings import PHASES, Trace, add_phases
from probe_exporter.probers.http.verdict import Gauges, header, judge
from probe_exporter.probers.net.addr import ResolveError, choose_protocol, resolve_addresses
from probe_exporter.probers.net.hostport import ip_literal

MAX_REDIRECTS = 10
_REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
# Live module clients, for shutdown(); a client goes with its module on reload.
_clients: weakref.WeakSet[ModuleClient] = weakref.WeakSet()


HTTP_CLIENT = CacheKey["ModuleClient"]("http.client")


def _client_for(module: Module) -> ModuleClient:
    def build() -> ModuleClient:
        client = ModuleClient(module.http)
        _clients.add(client)
        return client

    client = module.cached(HTTP_CLIENT, build)
    return client


def preload(module: Module) -> None:
    """The module's client, so its exchange path is chosen at config load, and aioquic for a module
    that probes over HTTP/3 (see registry.load)."""
    try:
        _client_for(module)
    except Exception:  # an unsupported OAuth2 grant: each probe fails with the reason, as Go's do
        pass
    if module.http.enable_http3:
        import probe_exporter.probers.http.http3  # noqa: F401


async def shutdown() -> None:
    """Close what modules keep open between probes (proxy pools, the OAuth2 token client)."""
    for client in list(_clients):
        await client.aclose()
    _clients.clear()


@dataclass(slots=True)
class _Chain:
    """What stays the same along a probe's redirect chain."""

    client: ModuleClient
    server_name: str  # upstream's TLS ServerName for the first host
    first_wire_host: str
    first_host_header: str
    first_dial_host: str
    userinfo: bytes | None
    proxy_set: bool
    policy: TargetPolicy | None  # the module's allowed_targets, checked again at every redirect
    first_origin: tuple[str, str, int]  # where the module's credentials go (all origins with the opt-in)


@dataclass(slots=True)
class _Hop:
    """Where the next request goes and what it carries."""

    scheme: str
    wire_host: str  # the URL's host[:port], the resolved address in place of the name
    host_header: str
    dial_host: str
    port: int
    path: str
    method: str
    body: bytes | None
    chunked_body: bool
    sni: str
    referer: str = ""
    cross_host: bool = False
    cookies: httpx.Cookies | None = None
    # The URL as the target names it (host names, not the addresses dialled): what allowed_targets and
    # the credentials' origin are checked against.
    logical_url: str = ""
    credentials: bool = True

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.wire_host}{self.path}"


async def probe_http(ctx: ProbeContext) -> bool:
    metrics, log = ctx.metrics, ctx.log
    # One flag for the whole exporter; each worker process holds its share (web_workers: as resolved at startup).
    http_body.BODY_BUDGET.limit = ctx.settings.body_memory_limit
    http_body.BODY_BUDGET.workers = max(ctx.settings.web_workers, 1)
    gauges = Gauges(metrics, ctx.module.http)
    start = await _prepare(ctx, gauges, metrics, log)
    if start is None:
        return False
    traces: list[Trace] = []
    success = await _follow(*start, traces, gauges, metrics, log)
    add_phases(gauges.durations, traces)
    return success


def _host_override(cfg: HTTPProbe, params: Mapping[str, str]) -> str | None:
    """The Host header: the module's `Host` header, or ?hostname= (400 when both differ)."""
    host_override = hops.configured_host(cfg)
    hostname_param = params.get("hostname")
    if hostname_param:
        if host_override is not None and host_override != hostname_param:
            raise BadRequest(f"host header defined both in module configuration ({host_override}) "
                             f"and with URL-parameter 'hostname' ({hostname_param})")
        host_override = hostname_param
    return host_override


def _parse_target(target: str, cfg: HTTPProbe, log: ProbeLog) -> tuple[str, urllib.parse.SplitResult] | None:
    """(scheme, URL parts) of the target, http:// assumed as upstream does; None when it is no URL."""
    original = target
    if not target.lower().startswith(("http://", "https://")):
        target = "http://" + target
    try:
        parts = urllib.parse.urlsplit(target)
        scheme = parts.scheme.lower()
        hostname = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as err:
        log.error("Could not parse target URL", err=str(err))
        return None
    if scheme not in ("http", "https") or not hostname:
        log.error("Could not parse target URL", err=f"invalid target {original!r}")
        return None
    if cfg.enable_http3 and scheme == "http":
        log.warn("Converting HTTP to HTTPS for HTTP/3 compatibility", original_target=original)
        scheme = "https"
    return scheme, parts


async def _resolve_first(hostname: str, cfg: HTTPProbe, gauges: Gauges, metrics: ProbeMetrics,
                         log: ProbeLog) -> tuple[bool, str | None]:
    """(ok, the address to dial or None to dial by name), resolve time in the `resolve` phase."""
    proxy_set = bool(cfg.proxy_url) or cfg.proxy_from_environment
    if cfg.skip_resolve_phase_with_proxy and proxy_set:
        return True, None
    try:
        resolved_ip, lookup_time = await choose_protocol(hostname, cfg.preferred_ip_protocol,
                                                         cfg.ip_protocol_fallback, metrics, log)
    except ResolveError as err:
        gauges.durations.labels("resolve").add(err.lookup_time)
        log.error("Error resolving address", err=str(err))
        return False, None
    gauges.durations.labels("resolve").add(lookup_time)
    # upstream dials HTTP/3 by name; the resolution only fed the metrics
    return True, None if cfg.enable_http3 else resolved_ip


async def _request_body(cfg: HTTPProbe, log: ProbeLog) -> tuple[bool, bytes | None, bool]:
    """(ok, body, chunked): `body`, or `body_file` read on each probe as upstream does (it may change)."""
    if cfg.body:
        return True, cfg.body.encode(), False
    if not cfg.body_file:
        return True, None, False
    try:  # off the event loop
        body = await asyncio.to_thread(Path(cfg.body_file).read_bytes)
    except OSError as err:
        log.error("Error creating request", err=f"open {cfg.body_file}: {err.strerror or err}")
        return False, None, False
    return True, body, True  # Go does not know an *os.File's length: it sends it chunked


async def _prepare(ctx: ProbeContext, gauges: Gauges, metrics: ProbeMetrics,
                   log: ProbeLog) -> tuple[_Chain, _Hop] | None:
    """The first hop, or None when the probe fails before it (bad URL, no address, bad TLS files)."""
    cfg: HTTPProbe = ctx.module.http
    host_override = _host_override(cfg, ctx.params)
    parsed = _parse_target(ctx.target, cfg, log)
    if parsed is None:
        return None
    scheme, parts = parsed
    hostname = parts.hostname or ""
    ok, resolved_ip = await _resolve_first(hostname, cfg, gauges, metrics, log)
    if not ok:
        return None
    try:
        client = _client_for(ctx.module)
        log.debug("HTTP exchange path", path=client.path.name, reason=client.path.reason)
        if scheme == "https" or client.tls_material_configured:
            # Go builds the TLS config for every probe, so a bad CA or key file fails plain http too.
            client.ssl_context  # noqa: B018 - built (and checked) before connecting
    except Exception as err:  # an unreadable CA or key file, an unsupported OAuth2 grant
        log.error("Error generating HTTP client", err=describe(err))
        return None
    ok, body, chunked = await _request_body(cfg, log)
    if not ok:
        return None
    for phase in PHASES:
        gauges.durations.labels(phase)
    netloc = parts.netloc.rpartition("@")[2]
    wire_host = netloc
    if resolved_ip is not None:
        literal = f"[{resolved_ip}]" if ":" in resolved_ip else resolved_ip
        wire_host = f"{literal}:{parts.port}" if parts.port else literal
    host_header = host_override if host_override is not None else netloc
    # Upstream's TLS ServerName: tls_config.server_name, else the Host header, else the target host.
    server_name = cfg.tls_config.server_name or (host_override if host_override is not None else hostname)
    dial_host = resolved_ip or hostname
    logical_url = urllib.parse.urlunsplit(parts._replace(scheme=scheme))
    chain = _Chain(client, server_name, wire_host, host_header, dial_host, hops.basic_from_userinfo(parts),
                   bool(cfg.proxy_url) or cfg.proxy_from_environment, target_policy(ctx.module),
                   hops.origin(logical_url))
    hop = _Hop(scheme, wire_host, host_header, dial_host, parts.port or (443 if scheme == "https" else 80),
               hops.request_target(parts.path, parts.query), cfg.method or "GET", body, chunked, server_name,
               logical_url=logical_url)
    return chain, hop


async def _follow(chain: _Chain, hop: _Hop, traces: list[Trace], gauges: Gauges, metrics: ProbeMetrics,
                  log: ProbeLog) -> bool:
    """Request after request until a response ends the chain (judged) or a hop fails."""
    pending_resolve = 0.0
    while True:
        log.debug("Making HTTP request", url=hop.url, host=hop.host_header)
        trace = Trace(tls=hop.scheme == "https")
        trace.resolve, pending_resolve = pending_resolve, 0.0
        traces.append(trace)
        response = await _send(chain, hop, trace, log)
        if response is None:
            return False
        try:
            outcome = await _on_response(chain, hop, response, len(traces), gauges, trace, metrics, log)
        finally:
            await response.aclose()
        if isinstance(outcome, bool):
            return outcome
        if not _may_follow(chain, hop, outcome, log):
            return False
        resolved, pending_resolve = await _redirect(chain, hop, outcome, response.status, log)
        if not resolved:
            failed = Trace(tls=hop.scheme == "https")
            failed.resolve = pending_resolve
            traces.append(failed)
            return False


async def _send(chain: _Chain, hop: _Hop, trace: Trace, log: ProbeLog) -> HopResponse | None:
    """One request on a connection of its own; None with the reason logged when it fails."""
    client = chain.client
    try:
        headers = await hops.request_headers(client, hop.host_header, chain.userinfo, hop.cross_host,
                                             hop.credentials)
    except OSError as err:
        log.error("Error for HTTP request", err=f"unable to read a credentials file: {err.strerror or err}")
        return None
    except Exception as err:  # OAuth2 token endpoint failures
        log.error("Error for HTTP request", err=describe(err))
        return None
    if hop.body is not None:
        headers.append((b"Transfer-Encoding", b"chunked") if hop.chunked_body
                       else (b"Content-Length", str(len(hop.body)).encode()))
    elif hop.method in _BODY_METHODS:
        headers.append((b"Content-Length", b"0"))
    if not (hop.scheme == "https" and client.http2):
        headers.append((b"Connection", b"close"))  # HTTP/2 forbids the header; keep-alive is off anyway
    if hop.referer:
        headers.append((b"Referer", hop.referer.encode()))
    if hop.cookies is not None:
        cookie = hops.cookie_header(hop.cookies, hop.method, hop.url)
        if cookie:
            headers.append((b"Cookie", cookie.encode()))
    request = HopRequest(hop.method, hop.scheme, hop.dial_host, hop.port, hop.path, headers, hop.body,
                         hop.chunked_body, hop.sni, trace)
    try:
        exchange = client.exchange_for(hop.scheme, hop.dial_host, hop.port)
    except Exception as err:  # the TLS settings, first needed by a redirect to https
        log.error("Error generating HTTP client", err=describe(err))
        return None
    try:
        return await exchange(request)
    except Exception as err:
        log.error("Error for HTTP request", err=describe(err))
        return None


async def _on_response(chain: _Chain, hop: _Hop, response: HopResponse, round_trips: int, gauges: Gauges,
                       trace: Trace, metrics: ProbeMetrics, log: ProbeLog) -> bool | hops.Location:
    """Where a redirect goes, or the verdict on the response that ends the chain."""
    location = header(response.headers, b"location")
    if hop.cookies is not None or header(response.headers, b"set-cookie") is not None:
        hop.cookies = hop.cookies if hop.cookies is not None else httpx.Cookies()
        hops.store_cookies(hop.cookies, hop.method, hop.url, response.headers)
    refused = False
    # Go does not follow a 307/308 whose body it cannot replay (body_file).
    if response.status in _REDIRECT_CODES and location is not None and not (
            response.status in (307, 308) and hop.chunked_body):
        log.info("Received redirect", location=mask_target(location))
        gauges.redirects.set(round_trips)  # upstream's len(via), which counts a refused redirect too
        if round_trips > MAX_REDIRECTS or not chain.client.cfg.follow_redirects:
            log.info("Not following redirect")
            refused = True
        else:
            try:
                return hops.next_location(hop.url, location, chain.first_host_header, chain.first_wire_host)
            except ValueError as err:  # Go's client returns no response at all then
                log.error("Error for HTTP request", err=f"failed to parse Location header {location!r}: {err}")
                return False
    return await judge(response, chain.client, hop.method, refused, gauges, trace, metrics, log)


def _may_follow(chain: _Chain, hop: _Hop, to: hops.Location, log: ProbeLog) -> bool:
    """The allowlist holds at every hop: a redirect outside the module's allowed_targets ends the probe
    before anything contacts it. Leaving the first origin drops the credentials unless opted in."""
    hop.logical_url = urllib.parse.urljoin(hop.logical_url, to.location)
    if chain.policy is not None and not chain.policy.allows(hop.logical_url, "http"):
        log.error("Error for HTTP request",
                  err=f"redirect to {mask_target(hop.logical_url)} is not in allowed_targets")
        return False
    hop.credentials = (chain.client.cfg.follow_redirects_with_credentials
                       or hops.origin(hop.logical_url) == chain.first_origin)
    return True


async def _redirect(chain: _Chain, hop: _Hop, to: hops.Location, status: int, log: ProbeLog) -> tuple[bool, float]:
    """Turn `hop` into the redirect's request, as Go's http.Client does: (resolved, seconds its name
    took to resolve)."""
    hop.referer = "" if (hop.scheme == "https" and to.scheme == "http") else hops.strip_userinfo(hop.url)
    # Go compares with the first request's URL host, which is the resolved address.
    hop.cross_host = hop.cross_host or not hops.same_or_subdomain(to.hostname, chain.first_dial_host)
    hop.sni = chain.server_name if to.wire_host == chain.first_wire_host else to.hostname
    if status in (301, 302, 303) and hop.method not in ("GET", "HEAD"):
        hop.method, hop.body, hop.chunked_body = "GET", None, False
    hop.scheme, hop.wire_host, hop.path, hop.port = to.scheme, to.wire_host, to.path, to.port
    hop.host_header, hop.dial_host = to.host_header, to.hostname
    proxied = chain.proxy_set and chain.client.proxy.proxy_for(hop.scheme, hop.dial_host, hop.port)
    if ip_literal(hop.dial_host.strip("[]")) is not None or proxied:
        return True, 0.0
    resolve_start = time.monotonic()
    try:
        hop.dial_host = (await resolve_addresses(hop.dial_host))[0]
    except ResolveError as err:
        log.error("Error for HTTP request", err=f"dial tcp: {err}")
        return False, time.monotonic() - resolve_start
    return True, time.monotonic() - resolve_start

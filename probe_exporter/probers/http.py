"""The HTTP prober: blackbox_exporter's prober/http.go semantics on httpx's transport layer (httpcore).

Each hop of a probe gets its own connection (blackbox disables keep-alive, and a pooled HTTP/2
connection would hide connect/TLS time and carry another probe's SNI), built from the module's
`ModuleClient` (SSL context, proxies, headers, credentials: built once per module; HTTP/3 hops come
from probers/http3.py). Phase timings come from httpcore's `trace` extension. Redirects are followed
here, as Go's http.Client does (Host, Referer, cookies, method changes). Success is decided in
upstream's order: status code, header regexes, decompression, size limit, body regexes, CEL, body
drain, Last-Modified, HTTP version, TLS.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.parse
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpcore
import httpx

from probe_exporter.config.blackbox import HTTPProbe
from probe_exporter.config.module import Module
from probe_exporter.logs import ProbeLog
from probe_exporter.probe_metrics import GaugeVec
from probe_exporter.probers.addr import ResolveError, choose_protocol, resolve_addresses
from probe_exporter.probers.base import BadRequest, ProbeContext, Prober
from probe_exporter.probers.http_body import BodyError, BodyReader, decoder_for
from probe_exporter.probers.http_client import USER_AGENT, ModuleClient
from probe_exporter.probers.tls_info import register_tls_metrics

__all__ = ["USER_AGENT", "probe_http", "shutdown"]

MAX_REDIRECTS = 10
_REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
_PHASES = ("connect", "tls", "processing", "transfer")
# Live module clients, for shutdown(); a client goes with its module on reload.
_clients: weakref.WeakSet[ModuleClient] = weakref.WeakSet()


class _Trace:
    """Timestamps (time.monotonic) of one round trip, fed by httpcore's trace events."""

    __slots__ = ("connect_done", "connect_start", "end", "resolve", "response_start", "tls", "tls_done",
                 "tls_start")

    def __init__(self, tls: bool) -> None:
        self.tls = tls
        self.resolve = 0.0
        self.connect_start = self.connect_done = self.tls_start = self.tls_done = 0.0
        self.response_start = self.end = 0.0

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith(".started"):
            if event.endswith("connect_tcp.started"):
                self.connect_start = time.monotonic()
            elif event.endswith("start_tls.started"):
                self.tls_start = time.monotonic()
        elif event.endswith(".complete"):
            if event.endswith("receive_response_headers.complete"):
                self.response_start = time.monotonic()
            elif event.endswith("connect_tcp.complete"):
                self.connect_done = time.monotonic()
            elif event.endswith("start_tls.complete"):
                self.tls_done = time.monotonic()

    @property
    def got_conn(self) -> float:
        return self.tls_done if self.tls else self.connect_done


class _BodyStream:
    """A request body httpcore can send (async iterable), for body_file's chunked upload."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> Any:
        yield self.data


def _client_for(ctx: ProbeContext) -> ModuleClient:
    def build() -> ModuleClient:
        client = ModuleClient(ctx.module.http)
        _clients.add(client)
        return client

    client: ModuleClient = ctx.module.cached("http.client", build)
    return client


def preload(module: Module) -> None:
    """aioquic, for a module that probes over HTTP/3 (see registry.load)."""
    if module.http.enable_http3:
        import probe_exporter.probers.http3  # noqa: F401


async def shutdown() -> None:
    """Close what modules keep open between probes (proxy pools, the OAuth2 token client)."""
    for client in list(_clients):
        await client.aclose()
    _clients.clear()


async def probe_http(ctx: ProbeContext) -> bool:
    metrics, log = ctx.metrics, ctx.log
    cfg: HTTPProbe = ctx.module.http
    durations = metrics.gauge_vec("probe_http_duration_seconds",
                                  "Duration of http request by phase, summed over all redirects", ["phase"])
    content_length = metrics.gauge("probe_http_content_length", "Length of http content response")
    body_length = metrics.gauge("probe_http_uncompressed_body_length", "Length of uncompressed response body")
    redirects_gauge = metrics.gauge("probe_http_redirects", "The number of redirects")
    is_ssl = metrics.gauge("probe_http_ssl", "Indicates if SSL was used for the final redirect")
    status_gauge = metrics.gauge("probe_http_status_code", "Response HTTP status code")
    version_gauge = metrics.gauge("probe_http_version", "Returns the version of HTTP of the probe response")
    regex_gauge = metrics.gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex")
    has_cel = cfg.fail_if_body_json_matches_cel is not None or cfg.fail_if_body_json_not_matches_cel is not None
    cel_gauge = metrics.gauge("probe_failed_due_to_cel",
                              "Indicates if probe failed due to CEL expression not matching") if has_cel else None

    # The Host header: the module's `Host` header, or ?hostname= (400 when both differ).
    host_override = _configured_host(cfg)
    hostname_param = ctx.params.get("hostname")
    if hostname_param:
        if host_override is not None and host_override != hostname_param:
            raise BadRequest(f"host header defined both in module configuration ({host_override}) "
                             f"and with URL-parameter 'hostname' ({hostname_param})")
        host_override = hostname_param

    target = ctx.target
    if not target.lower().startswith(("http://", "https://")):
        target = "http://" + target
    try:
        parts = urllib.parse.urlsplit(target)
        scheme = parts.scheme.lower()
        hostname = parts.hostname or ""
        explicit_port = parts.port
    except ValueError as err:
        log.error("Could not parse target URL", err=str(err))
        return False
    if scheme not in ("http", "https") or not hostname:
        log.error("Could not parse target URL", err=f"invalid target {ctx.target!r}")
        return False
    if cfg.enable_http3 and scheme == "http":
        log.warn("Converting HTTP to HTTPS for HTTP/3 compatibility", original_target=ctx.target)
        scheme = "https"

    proxy_set = bool(cfg.proxy_url) or cfg.proxy_from_environment
    resolved_ip: str | None = None
    if not (cfg.skip_resolve_phase_with_proxy and proxy_set):
        try:
            resolved_ip, lookup_time = await choose_protocol(hostname, cfg.preferred_ip_protocol,
                                                             cfg.ip_protocol_fallback, metrics, log)
        except ResolveError as err:
            durations.labels("resolve").add(err.lookup_time)
            log.error("Error resolving address", err=str(err))
            return False
        durations.labels("resolve").add(lookup_time)

    try:
        client = _client_for(ctx)
        if scheme == "https" or client.tls_material_configured:
            # Go builds the TLS config for every probe, so a bad CA or key file fails plain http too.
            client.ssl_context  # noqa: B018 - built (and checked) before connecting
    except Exception as err:  # an unreadable CA or key file, an unsupported OAuth2 grant
        log.error("Error generating HTTP client", err=_describe(err))
        return False

    # Upstream's TLS ServerName: tls_config.server_name, else the Host header, else the target host.
    server_name = cfg.tls_config.server_name or (host_override if host_override is not None else hostname)

    body: bytes | None = None
    chunked_body = False
    if cfg.body:
        body = cfg.body.encode()
    elif cfg.body_file:
        try:  # read on each probe, as upstream does (the file may change); off the event loop
            body = await asyncio.to_thread(Path(cfg.body_file).read_bytes)
        except OSError as err:
            log.error("Error creating request", err=f"open {cfg.body_file}: {err.strerror or err}")
            return False
        chunked_body = True  # Go does not know an *os.File's length: it sends it chunked

    for phase in _PHASES:
        durations.labels(phase)

    netloc = parts.netloc.rpartition("@")[2]
    port = explicit_port or (443 if scheme == "https" else 80)
    if resolved_ip is not None and cfg.enable_http3:
        resolved_ip = None  # upstream dials HTTP/3 by name; the resolution only fed the metrics
    if resolved_ip is not None:
        literal = f"[{resolved_ip}]" if ":" in resolved_ip else resolved_ip
        wire_host = f"{literal}:{explicit_port}" if explicit_port else literal
    else:
        wire_host = netloc
    first_wire_host = wire_host
    first_host_header = host_override if host_override is not None else netloc
    host_header = first_host_header
    dial_host = first_dial_host = resolved_ip or hostname
    path = _request_target(parts.path, parts.query)
    userinfo = _basic_from_userinfo(parts)
    method = cfg.method or "GET"  # sent as written, like Go
    sni = server_name

    traces: list[_Trace] = []
    redirects = 0
    pending_resolve = 0.0
    cookies: httpx.Cookies | None = None
    referer = ""
    cross_host = False
    success = False
    status = 0
    proto = ""
    response_headers: list[tuple[bytes, bytes]] = []
    body_bytes = 0
    length = 0
    tls_seen = False
    while True:
        log.debug("Making HTTP request", url=f"{scheme}://{wire_host}{path}", host=host_header)
        trace = _Trace(tls=scheme == "https")
        trace.resolve, pending_resolve = pending_resolve, 0.0
        traces.append(trace)
        try:
            headers = await _request_headers(client, host_header, userinfo, cross_host)
        except OSError as err:
            log.error("Error for HTTP request", err=f"unable to read a credentials file: {err.strerror or err}")
            break
        except Exception as err:  # OAuth2 token endpoint failures
            log.error("Error for HTTP request", err=_describe(err))
            break
        if body is not None:
            headers.append((b"Transfer-Encoding", b"chunked") if chunked_body
                           else (b"Content-Length", str(len(body)).encode()))
        elif method in _BODY_METHODS:
            headers.append((b"Content-Length", b"0"))
        if not (scheme == "https" and client.http2):
            headers.append((b"Connection", b"close"))  # HTTP/2 forbids the header; keep-alive is off anyway
        if referer:
            headers.append((b"Referer", referer.encode()))
        logical_url = f"{scheme}://{wire_host}{path}"
        if cookies is not None:
            cookie = _cookie_header(cookies, method, logical_url)
            if cookie:
                headers.append((b"Cookie", cookie.encode()))
        extensions: dict[str, Any] = {"trace": trace}
        if scheme == "https":
            extensions["sni_hostname"] = sni
        content: Any = None if body is None else (_BodyStream(body) if chunked_body else body)
        try:
            url = httpcore.URL(scheme=scheme, host=dial_host, port=port, target=path)
        except Exception as err:
            log.error("Error for HTTP request", err=_describe(err))
            break
        http_request = httpcore.Request(method, url, headers=headers, content=content, extensions=extensions)
        try:
            connection = client.connect(scheme, dial_host, port)
        except Exception as err:  # the TLS settings, first needed by a redirect to https
            log.error("Error generating HTTP client", err=_describe(err))
            break
        try:
            response = await connection.handle_async_request(http_request)
        except Exception as err:
            await _close(client, connection, None)
            log.error("Error for HTTP request", err=_describe(err))
            break
        except BaseException:  # the deadline: leave no half-open connection behind
            await _close(client, connection, None)
            raise
        next_hop: _Hop | None = None
        try:
            location = _header(response.headers, b"location")
            if cookies is not None or _header(response.headers, b"set-cookie") is not None:
                cookies = cookies if cookies is not None else httpx.Cookies()
                _store_cookies(cookies, method, logical_url, response.headers)
            refused = following = False
            # Go does not follow a 307/308 whose body it cannot replay (body_file).
            if response.status in _REDIRECT_CODES and location is not None and not (
                    response.status in (307, 308) and chunked_body):
                log.info("Received redirect", location=location)
                redirects = len(traces)  # upstream's len(via), which counts a refused redirect too
                if redirects > MAX_REDIRECTS or not cfg.follow_redirects:
                    log.info("Not following redirect")
                    refused = True
                else:
                    following = True
                    try:
                        next_hop = _next_hop(logical_url, location, first_host_header, first_wire_host)
                    except ValueError as err:  # Go's client returns no response at all then
                        log.error("Error for HTTP request",
                                  err=f"failed to parse Location header {location!r}: {err}")
            if not following:
                status, response_headers = response.status, response.headers
                proto = _go_proto(response.extensions.get("http_version", b"HTTP/1.1"))
                success, body_bytes, length = await _check_response(response, client, cfg, method, refused,
                                                                    regex_gauge, cel_gauge, log)
                trace.end = time.monotonic()
                network_stream = response.extensions.get("network_stream")
                ssl_object = network_stream.get_extra_info("ssl_object") if network_stream is not None else None
                if ssl_object is not None:
                    # The certificates are read before the connection closes.
                    tls_seen = True
                    is_ssl.set(1)
                    register_tls_metrics(metrics, ssl_object, verified=not cfg.tls_config.insecure_skip_verify,
                                         cipher=True)
        finally:
            await _close(client, connection, response)
        if next_hop is None:
            break
        # Follow the redirect, as Go's http.Client does.
        referer = "" if (scheme == "https" and next_hop.scheme == "http") else _strip_userinfo(logical_url)
        # Go compares with the first request's URL host, which is the resolved address.
        cross_host = cross_host or not _same_or_subdomain(next_hop.hostname, first_dial_host)
        sni = server_name if next_hop.wire_host == first_wire_host else next_hop.hostname
        if response.status in (301, 302, 303) and method not in ("GET", "HEAD"):
            method, body, chunked_body = "GET", None, False
        scheme, wire_host, path, port = next_hop.scheme, next_hop.wire_host, next_hop.path, next_hop.port
        host_header = next_hop.host_header
        dial_host = next_hop.hostname
        if not _is_ip_literal(dial_host) and not (proxy_set and client.proxy.proxy_for(scheme, dial_host, port)):
            resolve_start = time.monotonic()
            try:
                dial_host = (await resolve_addresses(dial_host))[0]
            except ResolveError as err:
                failed = _Trace(tls=scheme == "https")
                failed.resolve = time.monotonic() - resolve_start
                traces.append(failed)
                log.error("Error for HTTP request", err=f"dial tcp: {err}")
                break
            pending_resolve = time.monotonic() - resolve_start

    last_modified = _header(response_headers, b"last-modified")
    if last_modified is not None:
        stamp = parse_http_time(last_modified)
        if stamp is not None:
            metrics.gauge("probe_http_last_modified_timestamp_seconds",
                          "Returns the Last-Modified HTTP response header in unixtime").set(stamp)
    if proto:  # a response arrived
        try:
            version_gauge.set(float(proto.removeprefix("HTTP/")))
        except ValueError:
            log.error("Error parsing version number from HTTP version",
                      err=f'strconv.ParseFloat: parsing "{proto.removeprefix("HTTP/")}": invalid syntax')
        if cfg.valid_http_versions and proto not in cfg.valid_http_versions:
            log.error("Invalid HTTP version number", version=proto)
            success = False
    _add_phases(durations, traces)
    if tls_seen:
        if cfg.fail_if_ssl:
            log.error("Final request was over SSL")
            success = False
    elif cfg.fail_if_not_ssl and success:
        log.error("Final request was not over SSL")
        success = False
    status_gauge.set(status)
    content_length.set(length)
    body_length.set(body_bytes)
    redirects_gauge.set(redirects)
    return success


# --- request helpers -------------------------------------------------------------------------------


def _configured_host(cfg: HTTPProbe) -> str | None:
    for name, value in cfg.headers.items():
        if name.lower() == "host":
            return value
    return None


async def _request_headers(client: ModuleClient, host_header: str, userinfo: bytes | None,
                           cross_host: bool) -> list[tuple[bytes, bytes]]:
    headers = [(b"Host", host_header.encode())]
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


def _request_target(path: str, query: str) -> str:
    # Go escapes what must be escaped in the path and sends the query as given.
    target = urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~%") or "/"
    return f"{target}?{query}" if query else target


def _basic_from_userinfo(parts: urllib.parse.SplitResult) -> bytes | None:
    """Go's client turns user:password@ in the URL into basic auth when no Authorization is set."""
    if parts.username is None:
        return None
    import base64

    raw = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    return b"Basic " + base64.b64encode(raw.encode())


class _Hop:
    __slots__ = ("host_header", "hostname", "path", "port", "scheme", "wire_host")

    def __init__(self, scheme: str, wire_host: str, hostname: str, port: int, path: str, host_header: str) -> None:
        self.scheme, self.wire_host, self.hostname = scheme, wire_host, hostname
        self.port, self.path, self.host_header = port, path, host_header


def _next_hop(current_url: str, location: str, first_host_header: str, first_wire_host: str) -> _Hop:
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
    return _Hop(scheme, wire_host, hostname, port, _request_target(parts.path, parts.query), host_header)


def _strip_userinfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _same_or_subdomain(host: str, first: str) -> bool:
    host, first = host.lower(), first.lower()
    return host == first or host.endswith("." + first)


def _is_ip_literal(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _cookie_header(cookies: httpx.Cookies, method: str, url: str) -> str:
    probe = httpx.Request(method, url)
    cookies.set_cookie_header(probe)
    return str(probe.headers.get("cookie", ""))


def _store_cookies(cookies: httpx.Cookies, method: str, url: str, headers: list[tuple[bytes, bytes]]) -> None:
    try:
        response = httpx.Response(200, headers=headers, request=httpx.Request(method, url))
        cookies.extract_cookies(response)
    except Exception:  # a malformed Set-Cookie is ignored, as Go's jar does
        pass


async def _close(client: ModuleClient, connection: Any, response: httpcore.Response | None) -> None:
    try:
        if response is not None:
            await response.aclose()
        if not client.is_pool(connection):
            await connection.aclose()
    except Exception:  # closing a broken connection must not change the outcome
        pass


# A bytes literal in an error message: h11 and h2 quote the header value they refuse to send
# (`Illegal header value b'Bearer ...'`), which may be a credential.
_QUOTED_BYTES = re.compile(r"""(?:bytearray\()?b(['"]).*""", re.DOTALL)


def _describe(err: BaseException) -> str:
    """The error as one line, without the request (whose headers may carry credentials)."""
    text = str(err) or type(err).__name__
    if isinstance(err, httpcore.LocalProtocolError):  # what we tried to send is in the message
        text = _QUOTED_BYTES.sub("<redacted>", text)
    return f"{type(err).__name__}: {' '.join(text.split())}"


# --- response checks -------------------------------------------------------------------------------


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _header_values(headers: list[tuple[bytes, bytes]], name: str) -> list[str]:
    wanted = name.lower().encode("latin-1")
    return [value.decode("latin-1").strip() for key, value in headers if key.lower() == wanted]


def _go_proto(http_version: bytes) -> str:
    """httpcore says HTTP/2 where Go's resp.Proto says HTTP/2.0."""
    text = http_version.decode("ascii", "replace")
    return {"HTTP/2": "HTTP/2.0", "HTTP/3": "HTTP/3.0"}.get(text, text)


def _check_status(status: int, cfg: HTTPProbe, log: ProbeLog) -> bool:
    if cfg.valid_status_codes:
        if status in cfg.valid_status_codes:
            return True
        log.error("Invalid HTTP response status code", status_code=status,
                  valid_status_codes="[" + " ".join(map(str, cfg.valid_status_codes)) + "]")
        return False
    if 200 <= status < 300:
        return True
    log.error("Invalid HTTP response status code, wanted 2xx", status_code=status)
    return False


def _match_headers(headers: list[tuple[bytes, bytes]], cfg: HTTPProbe, log: ProbeLog) -> bool:
    """fail_if_header_matches, then fail_if_header_not_matches; a missing header fails unless allowed."""
    for matchers, fail_on_match in ((cfg.fail_if_header_matches, True), (cfg.fail_if_header_not_matches, False)):
        for matcher in matchers:
            values = _header_values(headers, matcher.header)
            if not values:
                if not matcher.allow_missing:
                    log.error("Missing required header", header=matcher.header)
                    return False
                continue
            if matcher.regexp is not None and any(matcher.regexp.search(v) for v in values) == fail_on_match:
                log.error("Header matched regular expression" if fail_on_match
                          else "Header did not match regular expression", header=matcher.header,
                          regexp=matcher.regexp.pattern, value_count=len(values))
                return False
    return True


def _match_body(body: bytes, cfg: HTTPProbe, log: ProbeLog) -> bool:
    for regex in cfg.fail_if_body_matches_regexp:
        if regex.search(body):
            log.error("Body matched regular expression", regexp=regex.pattern)
            return False
    for regex in cfg.fail_if_body_not_matches_regexp:
        if not regex.search(body):
            log.error("Body did not match regular expression", regexp=regex.pattern)
            return False
    return True


def _match_cel(body: bytes, cfg: HTTPProbe, log: ProbeLog) -> bool:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        log.error("Error unmarshalling HTTP body to JSON", err=str(err))
        return False
    for program, fail_when in ((cfg.fail_if_body_json_matches_cel, True),
                               (cfg.fail_if_body_json_not_matches_cel, False)):
        if program is None:
            continue
        try:
            result = program.evaluate(document)
        except Exception as err:
            log.error("Error evaluating CEL expression", err=" ".join(str(err).split()))
            return False
        if not isinstance(result, bool):  # celpy's BoolType subclasses int, not bool
            from celpy import celtypes

            if not isinstance(result, celtypes.BoolType):
                log.error("CEL evaluation result is not a boolean", details=type(result).__name__)
                return False
        if bool(result) == fail_when:
            log.error("Body matched CEL expression" if fail_when else "Body did not match CEL expression",
                      expression=program.expression)
            return False
    return True


async def _check_response(response: httpcore.Response, client: ModuleClient, cfg: HTTPProbe, method: str,
                          refused: bool, regex_gauge: Any, cel_gauge: Any, log: ProbeLog) -> tuple[bool, int, int]:
    """Status, header regexes and the body checks; returns (success, body bytes, content length)."""
    log.debug("Received HTTP response", status_code=response.status)
    success = _check_status(response.status, cfg, log)
    if success and (cfg.fail_if_header_matches or cfg.fail_if_header_not_matches):
        success = _match_headers(response.headers, cfg, log)
        regex_gauge.set(0 if success else 1)
    decoder = None
    if client.compression:
        if refused and client.compression == "gzip":
            # Go's gzip reader reads its header at once, from a body already closed by the redirect check.
            log.error("Failed to get decompressor for HTTP response body", err="http: read on closed response body")
            success = False
        else:
            try:
                decoder = decoder_for(client.compression)
            except ValueError as err:
                log.error("Failed to get decompressor for HTTP response body", err=str(err))
                success = False
    has_regex = bool(cfg.fail_if_body_matches_regexp or cfg.fail_if_body_not_matches_regexp)
    has_cel = cel_gauge is not None
    body_bytes = 0
    if refused:
        # Go closed the redirect's body before handing the response back: the checks that read it fail.
        if success and has_regex:
            log.error("Error reading HTTP body", err="http: read on closed response body")
            success = False
            regex_gauge.set(1)
        if success and has_cel:
            log.error("Error reading HTTP body", err="http: read on closed response body")
            success = False
            cel_gauge.set(1)
    else:
        wants_regex = success and has_regex
        reader = BodyReader(response.aiter_stream(), decoder, cfg.body_size_limit)
        error = ""
        try:
            body = await reader.read_all(keep=wants_regex or (success and has_cel))
        except BodyError as err:
            body, error = b"", str(err)
        except Exception as err:  # the connection broke mid-body
            body, error = b"", _describe(err)
        body_bytes = reader.count
        if wants_regex:
            if error:
                log.error("Error reading HTTP body", err=error)
                success = False
            else:
                success = _match_body(body, cfg, log)
            regex_gauge.set(0 if success else 1)
        if success and has_cel:
            if error:
                log.error("Error reading HTTP body", err=error)
                success = False
            else:
                # Upstream reads the body once: after the regexes have consumed it, CEL sees nothing.
                success = _match_cel(b"" if wants_regex else body, cfg, log)
            cel_gauge.set(0 if success else 1)
        if error:
            log.error("Failed to read HTTP response body", err=error)
            success = False
    return success, body_bytes, _content_length(response, method, body_bytes, refused)


def _content_length(response: httpcore.Response, method: str, body_bytes: int, refused: bool) -> int:
    """Go's resp.ContentLength: the header, 0 where no body can follow, else -1 (unknown)."""
    status = response.status
    headers = response.headers
    declared = _header(headers, b"content-length")
    http2 = response.extensions.get("http_version") == b"HTTP/2"
    if method == "HEAD":
        return int(declared) if declared is not None and declared.strip().isdigit() else -1
    if status < 200 or status in (204, 304):
        return 0
    if not http2 and (_header(headers, b"transfer-encoding") or "").lower().endswith("chunked"):
        return -1
    if declared is not None and declared.strip().isdigit():
        return int(declared)
    if http2 and body_bytes == 0 and not refused:
        return 0  # headers ended the stream
    return -1


_HTTP_TIME_FORMATS = ("%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S", "%a %b %d %H:%M:%S %Y")


def parse_http_time(value: str) -> int | None:
    """Go's http.ParseTime: RFC 1123 (GMT), RFC 850, ANSI C asctime; seconds since the epoch."""
    text = value.strip()
    candidates = [text]
    if "-" in text and text.count(" ") == 3:  # RFC 850 ends with a zone abbreviation
        candidates = [text.rsplit(" ", 1)[0]]
    elif "," not in text:
        candidates = [" ".join(text.split())]  # asctime pads the day with a space
    for candidate in candidates:
        for fmt in _HTTP_TIME_FORMATS:
            try:
                parsed = datetime.strptime(candidate, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
            return int(parsed.timestamp())
    return None


def _add_phases(durations: GaugeVec, traces: list[_Trace]) -> None:
    """upstream's per-roundtrip sums; the first hop's resolve came from chooseProtocol."""
    connect, tls, processing, transfer = (durations.labels(p) for p in _PHASES)
    for index, trace in enumerate(traces):
        if index:  # with skip_resolve_phase_with_proxy, `resolve` appears only after a redirect
            durations.labels("resolve").add(trace.resolve)
        got_conn = trace.got_conn
        if not got_conn:
            continue
        start = trace.connect_start or got_conn
        if trace.tls:
            connect.add((trace.connect_done or start) - start)
            tls.add(trace.tls_done - (trace.tls_start or trace.tls_done))
        else:
            connect.add(got_conn - start)
        if not trace.response_start:
            continue
        processing.add(trace.response_start - got_conn)
        if trace.end:
            transfer.add(trace.end - trace.response_start)


PROBER = Prober(name="http", probe=probe_http, config_model=HTTPProbe, preload=preload, shutdown=shutdown)

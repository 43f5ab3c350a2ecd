"""The HTTP prober: blackbox_exporter's prober/http.go semantics on httpx.

Where it decides success: `_check_response` (status, header regexes, body, versions, SSL), in
upstream's order. Requests go straight to a per-module httpx transport (built once, no keep-alive,
like Go's DisableKeepAlives) so each probe measures a fresh connect and TLS handshake, and each
probe gets its own cookie jar and redirect loop.
"""

from __future__ import annotations

import base64
import email.utils
import ipaddress
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx

from probe_exporter import __version__
from probe_exporter.config.blackbox import HTTPProbe
from probe_exporter.logs import ProbeLog
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.probers.addr import ResolveError, choose_protocol, resolve_addresses
from probe_exporter.probers.base import BadRequest, ProbeRequest
from probe_exporter.probers.tls_info import register_tls_metrics

USER_AGENT = f"Blackbox-Exporter/0.28.0 probe_exporter/{__version__}"
MAX_REDIRECTS = 10
_REDIRECT_CODES = {301, 302, 303, 307, 308}
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass
class _Trace:
    """Timestamps of one round trip (time.monotonic), filled from httpcore's trace events."""

    start: float
    resolve: float = 0.0
    connect_start: float = 0.0
    connect_done: float = 0.0
    tls_start: float = 0.0
    tls_done: float = 0.0
    response_start: float = 0.0
    end: float = 0.0

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if event == "connection.connect_tcp.started":
            self.connect_start = now
        elif event == "connection.connect_tcp.complete":
            self.connect_done = now
        elif event == "connection.start_tls.started":
            self.tls_start = now
        elif event == "connection.start_tls.complete":
            self.tls_done = now
        elif event.endswith("receive_response_headers.complete"):
            self.response_start = now


@dataclass
class _Response:
    status: int
    headers: httpx.Headers
    http_version: str
    ssl_object: Any
    url: httpx.URL
    trace: _Trace
    body_bytes: int = 0
    body: bytes | None = None
    read_error: str = ""
    extras: dict[str, Any] = field(default_factory=dict)


def _transport(cfg: HTTPProbe) -> httpx.AsyncHTTPTransport:
    tls = cfg.tls_config
    alpn = ["h2", "http/1.1"] if cfg.enable_http2 else ["http/1.1"]
    proxy: httpx.Proxy | None = None
    if cfg.proxy_url:
        headers = {name: ", ".join(s.reveal() for s in values)
                   for name, values in (cfg.proxy_connect_header or {}).items()}
        proxy = httpx.Proxy(cfg.proxy_url, headers=headers or None)
    return httpx.AsyncHTTPTransport(
        verify=tls.ssl_context(alpn=alpn), http2=cfg.enable_http2, trust_env=False, proxy=proxy, retries=0,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0))


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def _auth_headers(cfg: HTTPProbe) -> dict[str, str]:
    """Credentials are read at probe time, so rotated *_file secrets apply without a reload."""
    headers: dict[str, str] = {}
    if cfg.basic_auth is not None:
        user = cfg.basic_auth.username or (_read_file(cfg.basic_auth.username_file)
                                           if cfg.basic_auth.username_file else "")
        password = (cfg.basic_auth.password.reveal() if cfg.basic_auth.password else
                    _read_file(cfg.basic_auth.password_file) if cfg.basic_auth.password_file else "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    elif cfg.authorization is not None:
        auth = cfg.authorization
        credentials = (auth.credentials.reveal() if auth.credentials else
                       _read_file(auth.credentials_file) if auth.credentials_file else "")
        headers["Authorization"] = f"{auth.type} {credentials}"
    elif cfg.bearer_token is not None or cfg.bearer_token_file:
        token = cfg.bearer_token.reveal() if cfg.bearer_token else _read_file(cfg.bearer_token_file or "")
        headers["Authorization"] = f"Bearer {token}"
    for name, header in (cfg.http_headers or {}).items():
        values = list(header.values or []) + [s.reveal() for s in header.secrets or []]
        values += [_read_file(path) for path in header.files or []]
        if values:
            headers[name] = ", ".join(values)
    return headers


def _host_header(url: httpx.URL) -> str:
    host = url.host
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{url.port}" if url.port else host


def _with_ip(url: httpx.URL, ip: str) -> httpx.URL:
    return url.copy_with(host=ip)


def _decompressor(encoding: str) -> Any:
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":  # Go's flate reader: raw DEFLATE, no zlib header
        return zlib.decompressobj(-zlib.MAX_WBITS)
    if encoding == "br":
        import brotli

        return brotli.Decompressor()
    if encoding in ("identity", ""):
        return None
    raise ValueError(f"unsupported compression algorithm {encoding!r}")


class _BodyTooLarge(Exception):
    pass


async def _read_body(response: httpx.Response, cfg: HTTPProbe, keep: bool, out: _Response,
                     log: ProbeLog) -> bool:
    """Read the whole body (decompressed if configured, bounded by body_size_limit); False on failure."""
    ok = True
    try:
        decoder = _decompressor(cfg.compression) if cfg.compression else None
    except ValueError as err:
        log.info("Failed to get decompressor for HTTP response body", err=str(err))
        decoder, ok = None, False
    limit = cfg.body_size_limit
    chunks: list[bytes] = []
    try:
        async for raw in response.aiter_raw():
            data = (decoder.process(raw) if hasattr(decoder, "process") else decoder.decompress(raw)) \
                if decoder is not None else raw
            out.body_bytes += len(data)
            if limit and out.body_bytes > limit:
                raise _BodyTooLarge(f"http: request body too large (limit {limit} bytes)")
            if keep:
                chunks.append(data)
        if decoder is not None and hasattr(decoder, "flush"):
            tail = decoder.flush()
            out.body_bytes += len(tail)
            if limit and out.body_bytes > limit:
                raise _BodyTooLarge(f"http: request body too large (limit {limit} bytes)")
            chunks.append(tail)
    except (_BodyTooLarge, zlib.error, httpx.HTTPError, OSError) as err:
        out.read_error = str(err) or type(err).__name__
        log.info("Failed to read HTTP response body", err=out.read_error)
        ok = False
    except Exception as err:  # brotli.error and friends
        out.read_error = f"{type(err).__name__}: {err}"
        log.info("Failed to read HTTP response body", err=out.read_error)
        ok = False
    out.body = b"".join(chunks) if keep else None
    return ok


def _match_headers(headers: httpx.Headers, cfg: HTTPProbe, log: ProbeLog) -> bool:
    for matcher in cfg.fail_if_header_matches:
        values = headers.get_list(matcher.header)
        if not values:
            if not matcher.allow_missing:
                log.error("Missing required header", header=matcher.header)
                return False
            continue
        for value in values:
            if matcher.regexp is not None and matcher.regexp.search(value):
                log.error("Header matched regular expression", header=matcher.header,
                          regexp=matcher.regexp.pattern, value_count=len(values))
                return False
    for matcher in cfg.fail_if_header_not_matches:
        values = headers.get_list(matcher.header)
        if not values:
            if not matcher.allow_missing:
                log.error("Missing required header", header=matcher.header)
                return False
            continue
        if not any(matcher.regexp is not None and matcher.regexp.search(v) for v in values):
            log.error("Header did not match regular expression", header=matcher.header,
                      regexp=matcher.regexp.pattern if matcher.regexp else "", value_count=len(values))
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


def _go_proto(http_version: str) -> str:
    """httpx says HTTP/2 where Go's resp.Proto says HTTP/2.0."""
    return {"HTTP/2": "HTTP/2.0", "HTTP/3": "HTTP/3.0"}.get(http_version, http_version)


async def probe_http(request: ProbeRequest, metrics: ProbeMetrics, log: ProbeLog) -> bool:
    cfg: HTTPProbe = request.module.http
    durations = metrics.gauge_vec("probe_http_duration_seconds",
                                  "Duration of http request by phase, summed over all redirects", ["phase"])
    content_length = metrics.gauge("probe_http_content_length", "Length of http content response")
    body_length = metrics.gauge("probe_http_uncompressed_body_length", "Length of uncompressed response body")
    redirects_gauge = metrics.gauge("probe_http_redirects", "The number of redirects")
    is_ssl = metrics.gauge("probe_http_ssl", "Indicates if SSL was used for the final redirect")
    status_gauge = metrics.gauge("probe_http_status_code", "Response HTTP status code")
    version_gauge = metrics.gauge("probe_http_version", "Returns the version of HTTP of the probe response")
    regex_gauge = metrics.gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex")

    target = request.target
    if not _SCHEME.match(target):
        target = "http://" + target
    try:
        url = httpx.URL(target)
        if url.scheme.lower() not in ("http", "https") or not url.host:
            raise httpx.InvalidURL(f"unsupported target {target!r}")
        url = url.copy_with(scheme=url.scheme.lower())
    except (httpx.InvalidURL, ValueError) as err:
        log.error("Could not parse target URL", err=str(err))
        return False

    headers = {"User-Agent": USER_AGENT}
    host_header: str | None = None
    for name, value in cfg.headers.items():
        if name.lower() == "host":
            host_header = value
        else:
            headers[name] = value
    hostname_param = request.params.get("hostname")
    if hostname_param:
        if host_header is not None and host_header != hostname_param:
            raise BadRequest(f"host header defined both in module configuration ({host_header}) "
                             f"and with URL-parameter 'hostname' ({hostname_param})")
        host_header = hostname_param

    use_proxy = bool(cfg.proxy_url or cfg.proxy_from_environment)
    resolved_ip: str | None = None
    first_lookup = 0.0
    if not (cfg.skip_resolve_phase_with_proxy and use_proxy):
        durations.labels("resolve")
        try:
            resolved_ip, first_lookup = await choose_protocol(
                url.host, cfg.preferred_ip_protocol, cfg.ip_protocol_fallback, metrics, log)
        except ResolveError as err:
            durations.labels("resolve").add(err.lookup_time)
            return False
    for phase in ("resolve", "connect", "tls", "processing", "transfer"):
        durations.labels(phase)

    try:
        headers.update(_auth_headers(cfg))
    except OSError as err:
        log.error("Failed to read a credentials file", err=err.strerror or str(err))
        return False
    body: bytes | None = None
    if cfg.body is not None:
        body = cfg.body.encode()
    elif cfg.body_file:
        try:
            with open(cfg.body_file, "rb") as handle:
                body = handle.read()
        except OSError as err:
            log.error("Error reading body file", err=err.strerror or str(err))
            return False

    transport = request.module.cached("http.transport", lambda: _transport(cfg))
    cookies = httpx.Cookies()
    method = cfg.method.upper()
    traces: list[_Trace] = []
    redirects = 0
    current_url = url
    final: _Response | None = None
    success = False
    log.info("Making HTTP request", url=str(url), host=host_header or _host_header(url))
    while True:
        trace = _Trace(start=time.monotonic())
        traces.append(trace)
        hop_ip = resolved_ip
        if len(traces) > 1 and not (cfg.skip_resolve_phase_with_proxy and use_proxy):
            resolve_start = time.monotonic()
            try:
                addresses = await resolve_addresses(current_url.host)
            except ResolveError as err:
                log.error("Error for HTTP request", err=str(err))
                break
            trace.resolve = time.monotonic() - resolve_start
            hop_ip = addresses[0]
        hop_headers = dict(headers)
        hop_host = host_header if len(traces) == 1 and host_header else _host_header(current_url)
        hop_headers["Host"] = hop_host
        hop_headers["Connection"] = "close"
        send_url = _with_ip(current_url, hop_ip) if hop_ip else current_url
        # SNI: tls_config.server_name, else the Host header (module header or ?hostname=), else the URL host;
        # a redirect to another host uses that host, as upstream's second transport does.
        sni = (cfg.tls_config.server_name if len(traces) == 1 and cfg.tls_config.server_name
               else _strip_port(hop_host))
        extensions: dict[str, Any] = {"trace": trace, "timeout": {"connect": request.timeout,
                                                                  "read": request.timeout,
                                                                  "write": request.timeout,
                                                                  "pool": request.timeout}}
        if send_url.scheme == "https" and not _is_ip(sni):
            extensions["sni_hostname"] = sni
        http_request = httpx.Request(method, send_url, headers=hop_headers, content=body, extensions=extensions)
        cookies.set_cookie_header(http_request)
        try:
            response = await transport.handle_async_request(http_request)
        except httpx.HTTPError as err:
            log.error("Error for HTTP request", err=_describe(err))
            break
        try:
            response.request = http_request
            cookies.extract_cookies(response)
            network_stream = response.extensions.get("network_stream")
            ssl_object = network_stream.get_extra_info("ssl_object") if network_stream is not None else None
            final = _Response(status=response.status_code, headers=response.headers,
                              http_version=_go_proto(response.extensions.get("http_version", b"HTTP/1.1").decode()),
                              ssl_object=ssl_object, url=current_url, trace=trace)
            location = response.headers.get("location")
            if response.status_code in _REDIRECT_CODES and location:
                redirects += 1
                if cfg.follow_redirects and redirects <= MAX_REDIRECTS:
                    await response.aclose()
                    log.info("Received redirect", location=location)
                    current_url = current_url.join(location)
                    if response.status_code in (301, 302, 303) and method not in ("GET", "HEAD"):
                        method, body = "GET", None
                    continue
                log.info("Not following redirect", location=location, redirects=redirects)
            log.info("Received HTTP response", status_code=response.status_code)
            success = _check_status(final.status, cfg, log)
            if success and (cfg.fail_if_header_matches or cfg.fail_if_header_not_matches):
                success = _match_headers(final.headers, cfg, log)
                regex_gauge.set(0 if success else 1)
            wants_body = success and bool(cfg.fail_if_body_matches_regexp or cfg.fail_if_body_not_matches_regexp)
            read_ok = await _read_body(response, cfg, wants_body, final, log)
            if wants_body and read_ok and final.body is not None:
                success = _match_body(final.body, cfg, log)
                regex_gauge.set(0 if success else 1)
            if not read_ok:
                success = False
            trace.end = time.monotonic()
        finally:
            await response.aclose()
        break

    _add_phases(durations, traces, first_lookup)
    redirects_gauge.set(redirects)
    if final is None:
        return False
    status_gauge.set(final.status)
    length = final.headers.get("content-length")
    content_length.set(int(length) if length and length.isdigit() else -1)
    body_length.set(final.body_bytes)
    last_modified = final.headers.get("last-modified")
    if last_modified:
        try:
            parsed = email.utils.parsedate_to_datetime(last_modified)
            metrics.gauge("probe_http_last_modified_timestamp_seconds",
                          "Returns the Last-Modified HTTP response header in unixtime").set(int(parsed.timestamp()))
        except (TypeError, ValueError, IndexError):
            pass
    try:
        version_gauge.set(float(final.http_version.removeprefix("HTTP/")))
    except ValueError:
        log.error("Error parsing version number from HTTP version", version=final.http_version)
    if cfg.valid_http_versions and final.http_version not in cfg.valid_http_versions:
        log.error("Invalid HTTP version number", version=final.http_version)
        success = False
    if final.ssl_object is not None:
        is_ssl.set(1)
        register_tls_metrics(metrics, final.ssl_object, verified=not cfg.tls_config.insecure_skip_verify,
                             cipher=True)
        if cfg.fail_if_ssl:
            log.error("Final request was over SSL")
            success = False
    elif cfg.fail_if_not_ssl and success:
        log.error("Final request was not over SSL")
        success = False
    return success


def _check_status(status: int, cfg: HTTPProbe, log: ProbeLog) -> bool:
    if cfg.valid_status_codes:
        if status in cfg.valid_status_codes:
            return True
        log.error("Invalid HTTP response status code", status_code=status,
                  valid_status_codes=",".join(map(str, cfg.valid_status_codes)))
        return False
    if 200 <= status < 300:
        return True
    log.error("Invalid HTTP response status code, wanted 2xx", status_code=status)
    return False


def _add_phases(durations: Any, traces: list[_Trace], first_lookup: float) -> None:
    resolve, connect, tls, processing, transfer = (durations.labels(p) for p in
                                                   ("resolve", "connect", "tls", "processing", "transfer"))
    for index, trace in enumerate(traces):
        if index == 0:
            resolve.add(first_lookup)
        else:
            resolve.add(trace.resolve)
        if not trace.connect_done:
            continue
        connect.add(trace.connect_done - trace.connect_start)
        connected = trace.connect_done
        if trace.tls_done:
            tls.add(trace.tls_done - trace.tls_start)
            connected = trace.tls_done
        if not trace.response_start:
            continue
        processing.add(trace.response_start - connected)
        if trace.end:
            transfer.add(trace.end - trace.response_start)


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1:host.index("]")] if "]" in host else host.strip("[")
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _describe(err: Exception) -> str:
    """The error without the request (whose headers may carry credentials)."""
    cause = err.__cause__ or err.__context__
    text = str(err) or (str(cause) if cause else "") or type(err).__name__
    return f"{type(err).__name__}: {text}"

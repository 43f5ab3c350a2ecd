"""Whether an HTTP probe succeeded: upstream's checks of the final response, in upstream's order
(`judge` runs them: status, header regexes, decompression, size limit, body regexes, CEL, body drain,
Last-Modified, HTTP version, TLS)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from probe_exporter.config.blackbox import HTTPProbe
from probe_exporter.logs import ProbeLog
from probe_exporter.probe_metrics import Gauge, ProbeMetrics
from probe_exporter.probers.http.body import BODY_BUDGET, BodyError, BodyReader, decoder_for
from probe_exporter.probers.http.client import ModuleClient
from probe_exporter.probers.http.exchange import HopResponse, describe
from probe_exporter.probers.http.timings import Trace
from probe_exporter.probers.net.tls_info import register_tls_metrics


class Gauges:
    """The probe_http_* gauges every probe has (blackbox registers them before the first request)."""

    __slots__ = ("body_length", "cel", "content_length", "durations", "redirects", "regex", "ssl", "status",
                 "version")

    def __init__(self, metrics: ProbeMetrics, cfg: HTTPProbe) -> None:
        self.durations = metrics.gauge_vec("probe_http_duration_seconds",
                                           "Duration of http request by phase, summed over all redirects", ["phase"])
        self.content_length = metrics.gauge("probe_http_content_length", "Length of http content response")
        self.body_length = metrics.gauge("probe_http_uncompressed_body_length", "Length of uncompressed response body")
        self.redirects = metrics.gauge("probe_http_redirects", "The number of redirects")
        self.ssl = metrics.gauge("probe_http_ssl", "Indicates if SSL was used for the final redirect")
        self.status = metrics.gauge("probe_http_status_code", "Response HTTP status code")
        self.version = metrics.gauge("probe_http_version", "Returns the version of HTTP of the probe response")
        self.regex = metrics.gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex")
        has_cel = cfg.fail_if_body_json_matches_cel is not None or cfg.fail_if_body_json_not_matches_cel is not None
        self.cel = metrics.gauge("probe_failed_due_to_cel",
                                 "Indicates if probe failed due to CEL expression not matching") if has_cel else None


async def judge(response: HopResponse, client: ModuleClient, method: str, refused: bool, gauges: Gauges,
                trace: Trace, metrics: ProbeMetrics, log: ProbeLog) -> bool:
    """THE success decision of the HTTP prober, on the response that ended the redirect chain (a
    refused redirect included), read while its connection is still open."""
    cfg = client.cfg
    success, body_bytes, length = await check_response(response, client, cfg, method, refused, gauges.regex,
                                                       gauges.cel, log)
    trace.end = time.monotonic()
    tls_seen = response.ssl_object is not None
    if tls_seen:
        # The certificates are read before the connection closes.
        gauges.ssl.set(1)
        register_tls_metrics(metrics, response.ssl_object, verified=not cfg.tls_config.insecure_skip_verify,
                             cipher=True)
    last_modified = header(response.headers, b"last-modified")
    if last_modified is not None:
        stamp = parse_http_time(last_modified)
        if stamp is not None:
            metrics.gauge("probe_http_last_modified_timestamp_seconds",
                          "Returns the Last-Modified HTTP response header in unixtime").set(stamp)
    success = _check_version(response.http_version, cfg, gauges.version, log) and success
    if tls_seen:
        if cfg.fail_if_ssl:
            log.error("Final request was over SSL")
            success = False
    elif cfg.fail_if_not_ssl and success:
        log.error("Final request was not over SSL")
        success = False
    gauges.status.set(response.status)
    gauges.content_length.set(length)
    gauges.body_length.set(body_bytes)
    return success


def _check_version(proto: str, cfg: HTTPProbe, version_gauge: Gauge, log: ProbeLog) -> bool:
    try:
        version_gauge.set(float(proto.removeprefix("HTTP/")))
    except ValueError:
        log.error("Error parsing version number from HTTP version",
                  err=f'strconv.ParseFloat: parsing "{proto.removeprefix("HTTP/")}": invalid syntax')
    if cfg.valid_http_versions and proto not in cfg.valid_http_versions:
        log.error("Invalid HTTP version number", version=proto)
        return False
    return True


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _header_values(headers: list[tuple[bytes, bytes]], name: str) -> list[str]:
    wanted = name.lower().encode("latin-1")
    return [value.decode("latin-1").strip() for key, value in headers if key.lower() == wanted]


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


async def check_response(response: HopResponse, client: ModuleClient, cfg: HTTPProbe, method: str, refused: bool,
                         regex_gauge: Gauge, cel_gauge: Gauge | None, log: ProbeLog) -> tuple[bool, int, int]:
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
    body_bytes = 0
    if refused:
        # Go closed the redirect's body before handing the response back: the checks that read it fail.
        if success and has_regex:
            log.error("Error reading HTTP body", err="http: read on closed response body")
            success = False
            regex_gauge.set(1)
        if success and cel_gauge is not None:
            log.error("Error reading HTTP body", err="http: read on closed response body")
            success = False
            cel_gauge.set(1)
    else:
        wants_regex = success and has_regex
        reader = BodyReader(response.body(), decoder, cfg.body_size_limit, BODY_BUDGET)
        try:
            success, body_bytes = await _check_body(reader, wants_regex, success, cfg, regex_gauge, cel_gauge, log)
        finally:
            reader.release()
    return success, body_bytes, _content_length(response, method, body_bytes, refused)


async def _check_body(reader: BodyReader, wants_regex: bool, success: bool, cfg: HTTPProbe, regex_gauge: Gauge,
                      cel_gauge: Gauge | None, log: ProbeLog) -> tuple[bool, int]:
    """Read the body (kept only for the checks that need it) and run the regex and CEL checks."""
    error = ""
    try:
        body = await reader.read_all(keep=wants_regex or (success and cel_gauge is not None))
    except BodyError as err:
        body, error = b"", str(err)
    except Exception as err:  # the connection broke mid-body
        body, error = b"", describe(err)
    body_bytes = reader.count
    if wants_regex:
        if error:
            log.error("Error reading HTTP body", err=error)
            success = False
        else:
            success = _match_body(body, cfg, log)
        regex_gauge.set(0 if success else 1)
    if success and cel_gauge is not None:
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
    return success, body_bytes


def _content_length(response: HopResponse, method: str, body_bytes: int, refused: bool) -> int:
    """Go's resp.ContentLength: the header, 0 where no body can follow, else -1 (unknown)."""
    status = response.status
    headers = response.headers
    declared = header(headers, b"content-length")
    http2 = response.http_version == "HTTP/2.0"
    if method == "HEAD":
        return int(declared) if declared is not None and declared.strip().isdigit() else -1
    if status < 200 or status in (204, 304):
        return 0
    if not http2 and (header(headers, b"transfer-encoding") or "").lower().endswith("chunked"):
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


"""The gRPC prober: `grpc.health.v1.Health/Check` as blackbox_exporter's prober/grpc.go does it.

The unary call is made on our own HTTP/2 connection (h2, the library httpx's HTTP/2 uses) rather
than a grpcio channel, because grpcio's client cannot do what blackbox needs: it exposes neither the
server certificate nor the TLS version (the probe_ssl_* / probe_tls_version_info block), cannot
skip verification (`insecure_skip_verify`) and cannot pin TLS versions. Messages are the
grpcio-health-checking protobufs. The probe deadline bounds the whole call and is sent as
`grpc-timeout` (upstream used context.Background() until PR #1557).

Metric rules kept from upstream: the TLS block and probe_grpc_ssl=1 only when the RPC returned a
response; all four serving_status series after the check (the actual one at 1); on a failed
resolution only the resolve phase.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from probe_exporter import __version__
from probe_exporter.config.blackbox import GRPCProbe
from probe_exporter.extras import required
from probe_exporter.modulecache import CacheKey
from probe_exporter.probe_metrics import Gauge, GaugeVec
from probe_exporter.probers.base import ProbeContext, Prober
from probe_exporter.probers.net.addr import resolve_host
from probe_exporter.probers.net.hostport import (
    HostPortError,
    join_host_port,
    port_number,
    split_host_port,
)
from probe_exporter.probers.net.tls_info import register_tls_metrics
from probe_exporter.probers.neterrors import describe_os_error

with required("grpc"):
    from grpc_health.v1 import health_pb2

HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check"
USER_AGENT = f"probe_exporter/{__version__} grpc-h2"
MAX_RESPONSE = 1 << 20
MAX_EXCHANGE = 2 * MAX_RESPONSE

OK, CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED = 0, 1, 2, 4, 8
UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 12, 13, 14
_CODE_NAMES = {0: "OK", 1: "Canceled", 2: "Unknown", 3: "InvalidArgument", 4: "DeadlineExceeded", 5: "NotFound",
               6: "AlreadyExists", 7: "PermissionDenied", 8: "ResourceExhausted", 9: "FailedPrecondition",
               10: "Aborted", 11: "OutOfRange", 12: "Unimplemented", 13: "Internal", 14: "Unavailable",
               15: "DataLoss", 16: "Unauthenticated"}
# gRPC's HTTP-status-to-code mapping for responses that are not gRPC at all.
_HTTP_TO_CODE = {400: INTERNAL, 401: 16, 403: 7, 404: UNIMPLEMENTED, 429: UNAVAILABLE, 502: UNAVAILABLE,
                 503: UNAVAILABLE, 504: UNAVAILABLE}
_SERVING_STATUSES = list(health_pb2.HealthCheckResponse.ServingStatus.keys())


class RPCError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __str__(self) -> str:
        return f"rpc error: code = {_CODE_NAMES.get(self.code, self.code)} desc = {self.args[0]}"


@dataclass
class _Call:
    headers: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False


def _split_target(target: str) -> tuple[str, str]:
    """Upstream: add http:// unless there is a scheme, take the URL host, split off an optional port."""
    if not target.startswith(("http://", "https://")):
        target = "http://" + target
    authority = target.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    authority = unquote(authority.rpartition("@")[2])
    try:
        return split_host_port(authority)
    except HostPortError:
        return authority, ""


def _grpc_timeout(seconds: float) -> str:
    millis = max(int(seconds * 1000), 1)
    return f"{millis}m" if millis < 100_000_000 else f"{int(seconds)}S"


def _metadata_headers(metadata: dict[str, list[str]]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for key, values in metadata.items():
        name = key.lower()
        for item in values:
            # Binary headers travel base64-encoded, as grpc-go encodes `-bin` metadata.
            headers.append((name, base64.b64encode(item.encode()).decode().rstrip("=") if name.endswith("-bin")
                            else item))
    return headers


async def _health_check(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, scheme: str, authority: str,
                        service: str, metadata: list[tuple[str, str]], timeout: float) -> tuple[int, str]:
    """One Health/Check call; returns the status name. Raises RPCError with the gRPC status code."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    stream_id = conn.get_next_available_stream_id()
    headers = [(":method", "POST"), (":scheme", scheme), (":path", HEALTH_CHECK_PATH), (":authority", authority),
               ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", USER_AGENT),
               ("grpc-timeout", _grpc_timeout(timeout)), *metadata]
    message = health_pb2.HealthCheckRequest(service=service).SerializeToString()
    conn.send_headers(stream_id, headers)
    conn.send_data(stream_id, struct.pack("!BI", 0, len(message)) + message, end_stream=True)
    writer.write(conn.data_to_send())
    await writer.drain()

    call = _Call()
    received = 0
    while not call.ended:
        data = await reader.read(65536)
        if not data:
            raise RPCError(UNAVAILABLE, "connection closed before the response")
        # Headers, padding and frames for other streams count too: the whole exchange is bounded.
        received += len(data)
        if received > MAX_EXCHANGE:
            raise RPCError(RESOURCE_EXHAUSTED, f"more than {MAX_EXCHANGE} bytes received for one health check")
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as err:
            raise RPCError(UNAVAILABLE, f"connection error: {err}") from None
        for event in events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                call.headers = dict(event.headers)  # type: ignore[arg-type]
            elif isinstance(event, h2.events.TrailersReceived) and event.stream_id == stream_id:
                call.trailers = dict(event.headers)  # type: ignore[arg-type]
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                call.body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                if len(call.body) > MAX_RESPONSE:
                    raise RPCError(RESOURCE_EXHAUSTED, "response larger than 1 MiB")
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                call.ended = True
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                code = CANCELLED if event.error_code == h2.errors.ErrorCodes.CANCEL else (
                    UNAVAILABLE if event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM else INTERNAL)
                raise RPCError(code, f"stream terminated by RST_STREAM with error code: {_h2_code(event.error_code)}")
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise RPCError(UNAVAILABLE, f"connection closed by GOAWAY ({_h2_code(event.error_code)})")
        pending = conn.data_to_send()
        if pending:
            writer.write(pending)
            await writer.drain()
    return _response_status(call)


def _h2_code(code: h2.errors.ErrorCodes | int | None) -> str:
    """An HTTP/2 error code's name; h2 gives a plain int for codes it does not know."""
    return code.name if isinstance(code, h2.errors.ErrorCodes) else str(code)


def _response_status(call: _Call) -> tuple[int, str]:
    http_status = int(call.headers.get(":status", "0") or 0)
    content_type = call.headers.get("content-type", "")
    # A trailers-only response carries grpc-status in the headers.
    fields = {**call.headers, **call.trailers}
    if "grpc-status" not in fields:
        if http_status != 200:
            raise RPCError(_HTTP_TO_CODE.get(http_status, UNKNOWN),
                           f"unexpected HTTP status code received from server: {http_status}")
        if not content_type.startswith("application/grpc"):
            raise RPCError(UNKNOWN, f"unexpected content-type {content_type!r}")
        raise RPCError(INTERNAL, "server closed the stream without sending trailers")
    try:
        code = int(fields["grpc-status"])
    except ValueError:
        raise RPCError(UNKNOWN, f"malformed grpc-status {fields['grpc-status']!r}") from None
    if code != OK:
        raise RPCError(code, unquote(fields.get("grpc-message", "")))
    body = bytes(call.body)
    if len(body) < 5:
        raise RPCError(INTERNAL, "response message missing")
    compressed, length = struct.unpack("!BI", body[:5])
    if compressed:
        raise RPCError(INTERNAL, "compressed response without negotiated encoding")
    try:
        response = health_pb2.HealthCheckResponse.FromString(body[5:5 + length])
    except Exception as err:  # protobuf's DecodeError
        raise RPCError(INTERNAL, f"grpc: failed to unmarshal the received message: {err}") from None
    return response.status, health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


GRPC_SSL = CacheKey[ssl.SSLContext]("grpc.ssl")
GRPC_METADATA = CacheKey[list[tuple[str, str]]]("grpc.metadata")


async def probe_grpc(ctx: ProbeContext) -> bool:
    metrics, log = ctx.metrics, ctx.log
    started = time.monotonic()
    cfg: GRPCProbe = ctx.module.grpc
    durations = metrics.gauge_vec("probe_grpc_duration_seconds", "Duration of gRPC request by phase", ["phase"])
    durations.labels("resolve")
    ssl_gauge = metrics.gauge("probe_grpc_ssl", "Indicates if SSL was used for the connection")
    status_gauge = metrics.gauge("probe_grpc_status_code", "Response gRPC status code")
    health = metrics.gauge_vec("probe_grpc_healthcheck_response", "Response HealthCheck response", ["serving_status"])

    host, port_text = _split_target(ctx.target)
    context: ssl.SSLContext | None = None
    if cfg.tls:
        try:
            context = ctx.module.cached(GRPC_SSL, lambda: cfg.tls_config.ssl_context(alpn=["h2"]))
        except (OSError, ValueError) as err:
            log.error("Error creating TLS configuration", err=describe_os_error(err))
            return False
    ip = await resolve_host(host, cfg, metrics, log, durations)
    if ip is None:
        return False
    check_start = time.monotonic()
    port_text = port_text or ("443" if cfg.tls else "80")
    authority = join_host_port(host, port_text)
    server_name = cfg.tls_config.server_name or host

    code, status_name = UNAVAILABLE, ""
    error: Exception | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        port = port_number(port_text)
        log.debug("Dialing GRPC with TLS" if cfg.tls else "Dialing GRPC without TLS", address=join_host_port(ip, port))
        try:
            reader, writer = await asyncio.open_connection(
                ip, port, family=socket.AF_INET6 if ":" in ip else socket.AF_INET, ssl=context,
                server_hostname=server_name if cfg.tls else None,
                ssl_handshake_timeout=max(ctx.timeout, 0.001) if cfg.tls else None)
        except (OSError, ValueError) as err:
            raise RPCError(UNAVAILABLE, f"connection error: desc = \"transport: Error while dialing: dial tcp "
                                        f"{join_host_port(ip, port)}: {describe_os_error(err)}\"") from None
        remaining = ctx.timeout - (time.monotonic() - started)
        _, status_name = await _health_check(
            reader, writer, scheme="https" if cfg.tls else "http", authority=authority, service=cfg.service,
            metadata=ctx.module.cached(GRPC_METADATA, lambda: _metadata_headers(cfg.metadata)),
            timeout=remaining)
        code = OK
        # Upstream has the peer's TLS state only when the RPC returned; read it before closing.
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            ssl_gauge.set(1)
            register_tls_metrics(metrics, ssl_object, verified=not cfg.tls_config.insecure_skip_verify,
                                 last_chain=False, cipher=False)
    except HostPortError as err:
        error = RPCError(UNAVAILABLE, str(err))
    except RPCError as err:
        code, error = err.code, err
    except OSError as err:
        code, error = UNAVAILABLE, RPCError(UNAVAILABLE, f"connection error: {describe_os_error(err)}")
    except h2.exceptions.H2Error as err:  # e.g. metadata that is not a valid header
        code, error = INTERNAL, RPCError(INTERNAL, f"grpc: {err}")
    except asyncio.CancelledError:
        # The probe deadline: report what upstream reports for an expired context, then let it stop us.
        _record(durations, check_start, health, "", status_gauge, DEADLINE_EXCEEDED)
        log.error("can't connect grpc server", err=str(RPCError(DEADLINE_EXCEEDED, "context deadline exceeded")))
        raise
    finally:
        if writer is not None:
            writer.close()
    _record(durations, check_start, health, status_name, status_gauge, code)
    if error is not None:
        log.error("can't connect grpc server", err=str(error))
        return False
    if status_name != "SERVING":
        log.error("Health check answered, but not SERVING", serving_status=status_name, service=cfg.service)
        return False
    log.debug("connect the grpc server successfully")
    return True


def _record(durations: GaugeVec, check_start: float, health: GaugeVec, status_name: str, status_gauge: Gauge,
            code: int) -> None:
    durations.labels("check").add(time.monotonic() - check_start)
    for name in _SERVING_STATUSES:
        health.labels(name).set(0)
    if status_name:
        health.labels(status_name).set(1)
    status_gauge.set(code)


PROBER = Prober(name="grpc", probe=probe_grpc, config_model=GRPCProbe)

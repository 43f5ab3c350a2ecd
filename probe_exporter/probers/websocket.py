"""The websocket prober: blackbox_exporter master's prober/websocket.go.

Resolve the URL's host with chooseProtocol (`resolve`), dial that address (`connect`), do the TLS
and HTTP Upgrade handshakes (`processing`), then run `query_response` over whole messages
(`transfer`): `expect` is an RE2 search over one received message, `send` goes out as a text frame,
expanded with Go's Regexp.Expand (`${1}`) after an `expect`. A failing step fails the probe and sets
probe_websocket_failed_due_to_regex, as upstream does for any step that fails (a read error too).

The frames are spoken by the `websockets` package's sans-I/O protocol over our own asyncio stream,
so every phase is timed where it happens. The response head is read by us: a server that answers
without upgrading is judged on its status line at once, as gorilla/websocket does, not after a body
that may never end.
"""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.parse
from collections import deque
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidURI, WebSocketException
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from probe_exporter.config.blackbox import WebsocketProbe
from probe_exporter.logs import ProbeLog, mask_target
from probe_exporter.probe_metrics import Gauge, GaugeVec
from probe_exporter.probers.base import ProbeContext, Prober
from probe_exporter.probers.http.client import canonical_header_key, read_secret_file
from probe_exporter.probers.net.addr import resolve_host
from probe_exporter.probers.net.hostport import join_host_port
from probe_exporter.probers.neterrors import describe_os_error
from probe_exporter.probers.query_response import MAX_DIALOGUE_BYTES, go_expand
from probe_exporter.probers.tcp import module_ssl_context

# Go's http.Request.Write sends this when no User-Agent header is set, and gorilla writes its
# handshake that way.
DEFAULT_USER_AGENT = "Go-http-client/1.1"
# gorilla/websocket refuses these in the request headers: the handshake owns them.
_HANDSHAKE_HEADERS = frozenset(("Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version",
                                "Sec-Websocket-Extensions"))
# Ours, not upstream's (gorilla reads without limit): one message, and the response head.
MAX_MESSAGE = MAX_DIALOGUE_BYTES
MAX_RESPONSE_HEAD = 64 * 1024
_READ_SIZE = 64 * 1024


class HandshakeError(Exception):
    """The HTTP Upgrade failed; `status` is the response's status code (0 without a response)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class MessageError(Exception):
    """Reading a message failed: the peer closed, the stream ended or the protocol was broken."""


def request_headers(cfg: WebsocketProbe, log: ProbeLog) -> list[tuple[str, str]]:
    """blackbox's constructHeadersFromConfig: Authorization from http_config's basic_auth and
    authorization, then `headers` (values, secrets, files). Files are read on each probe and a file
    that cannot be read is logged and left out, as upstream."""
    headers: list[tuple[str, str]] = []
    client = cfg.http_config
    if client.basic_auth is not None:
        auth = client.basic_auth
        username = auth.username or ""
        password = auth.password.reveal() if auth.password else ""
        if auth.username_file:
            username = _read_file(auth.username_file, "Unable to read basic auth username file", log, username)
        if auth.password_file:
            password = _read_file(auth.password_file, "Unable to read basic auth password file", log, password)
        headers.append(("Authorization", "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()))
    if client.authorization is not None:
        auth2 = client.authorization
        credentials = auth2.credentials.reveal() if auth2.credentials else ""
        if auth2.credentials_file:
            credentials = _read_file(auth2.credentials_file, "Unable to read authorization credentials file", log,
                                     credentials)
        if credentials:
            headers.append(("Authorization", f"{auth2.type or 'Bearer'} {credentials}"))
    for name, header in cfg.headers.items():
        key = canonical_header_key(name)
        headers.extend((key, value) for value in header.values or [])
        headers.extend((key, secret.reveal()) for secret in header.secrets or [])
        for path in header.files or []:
            value = _read_file(path, "Unable to read header file", log, None)
            if value is not None:
                headers.append((key, value))
    return headers


def _read_file(path: str, message: str, log: ProbeLog, fallback: Any) -> Any:
    try:
        return read_secret_file(path)
    except (OSError, UnicodeDecodeError) as err:
        log.error(message, file=path, err=describe_os_error(err))
        return fallback


class Session:
    """One websocket connection: the sans-I/O protocol bound to an asyncio stream."""

    def __init__(self, protocol: ClientProtocol, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.protocol = protocol
        self.reader = reader
        self.writer = writer
        self.events: deque[Any] = deque()

    async def flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:  # b"" asks for a half-close; closing the stream covers it
                self.writer.write(chunk)
        await self.writer.drain()

    async def handshake(self, request: Request) -> int:
        """Send the Upgrade request and check the answer; the status code, or HandshakeError."""
        self.protocol.send_request(request)
        await self.flush()
        head = bytearray()
        status_line = b""
        while True:
            line = await self.reader.readline()
            if not line:
                raise HandshakeError("unexpected EOF reading the handshake response")
            head += line
            if len(head) > MAX_RESPONSE_HEAD:
                raise HandshakeError(f"the handshake response head is longer than {MAX_RESPONSE_HEAD} bytes")
            if not status_line:
                status_line = line
            elif line in (b"\r\n", b"\n"):
                break
        status = _status_code(status_line)
        if status != 101:
            raise HandshakeError("websocket: bad handshake", status)
        self.protocol.receive_data(bytes(head))
        self.events.extend(self.protocol.events_received())
        if self.protocol.handshake_exc is not None:
            raise HandshakeError(f"websocket: bad handshake: {self.protocol.handshake_exc}", status)
        if not self.events:
            raise HandshakeError("websocket: bad handshake: incomplete response", status)
        self.events.popleft()  # the Response
        return status

    async def read_message(self) -> bytes:
        """The next text or binary message, continuation frames joined; pings are answered."""
        parts: list[bytes] = []
        while True:
            frame = await self._next_frame()
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                parts = [bytes(frame.data)]
            elif frame.opcode is Opcode.CONT:
                parts.append(bytes(frame.data))
            elif frame.opcode is Opcode.CLOSE:
                raise MessageError(f"websocket: close: {self.protocol.close_rcvd or 'no status'}")
            else:
                continue  # ping (the protocol has queued the pong) or pong
            if frame.fin:
                return b"".join(parts)

    async def _next_frame(self) -> Frame:
        while not self.events:
            if self.protocol.parser_exc is not None:  # a broken frame, a message over MAX_MESSAGE
                raise MessageError(f"websocket: {self.protocol.parser_exc}")
            data = await self.reader.read(_READ_SIZE)
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            self.events.extend(self.protocol.events_received())
            await self.flush()
            if not data and not self.events:
                raise MessageError("unexpected EOF")
        event = self.events.popleft()
        assert isinstance(event, Frame)
        return event

    async def send_text(self, data: bytes) -> None:
        self.protocol.send_text(data)
        await self.flush()

    def close(self) -> None:
        """Say goodbye without waiting for the answer (upstream just drops the connection)."""
        try:
            if self.protocol.state is State.OPEN:
                self.protocol.send_close(1000)
                for chunk in self.protocol.data_to_send():
                    if chunk:
                        self.writer.write(chunk)
        except (OSError, WebSocketException):
            pass
        self.writer.close()


def _status_code(line: bytes) -> int:
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise HandshakeError(f"malformed HTTP response {line.strip()[:80]!r}")
    return int(parts[1])


def _build_request(protocol: ClientProtocol, headers: list[tuple[str, str]], host_header: str | None) -> Request:
    request = protocol.connect()
    user_sets_authorization = any(key == "Authorization" for key, _ in headers)
    if user_sets_authorization and "Authorization" in request.headers:
        del request.headers["Authorization"]  # a configured one wins over the URL's user info, as in gorilla
    if host_header is not None:
        del request.headers["Host"]
        request.headers["Host"] = host_header
    for key, value in headers:
        if key not in ("Host", "Sec-Websocket-Protocol"):
            request.headers[key] = value
    if "User-Agent" not in request.headers:
        request.headers["User-Agent"] = DEFAULT_USER_AGENT
    return request


async def probe_websocket(ctx: ProbeContext) -> bool:
    metrics, log = ctx.metrics, ctx.log
    cfg: WebsocketProbe = ctx.module.websocket
    try:
        url = urllib.parse.urlsplit(ctx.target)
        host = url.hostname or ""
        explicit_port = url.port
    except ValueError as err:  # before any metric, as upstream
        log.error("Could not parse target URL", err=str(err))
        return False
    log.debug("probing websocket", target=mask_target(ctx.target))
    status_gauge = metrics.gauge("probe_websocket_status_code", "Response HTTP status code")
    upgraded_gauge = metrics.gauge("probe_websocket_connection_upgraded",
                                   "Indicates if the websocket connection was successfully upgraded")
    regex_gauge = metrics.gauge("probe_websocket_failed_due_to_regex", "Indicates if probe failed due to regex")
    durations = metrics.gauge_vec("probe_websocket_duration_seconds", "Duration of websocket request by phase",
                                  ["phase"])
    tls = cfg.http_config.tls_config
    try:
        # Built even for ws://, so a bad tls_config fails every probe, as upstream.
        context = module_ssl_context(ctx, "websocket.ssl", tls)
    except (OSError, ValueError) as err:
        log.error("Error creating TLS config", err=describe_os_error(err))
        return False
    ip = await resolve_host(host, cfg, metrics, log, durations)
    if ip is None:
        return False

    headers = request_headers(cfg, log)
    dial_start = time.monotonic()
    connect_time = 0.0
    writer: asyncio.StreamWriter | None = None
    try:
        try:
            if url.scheme not in ("ws", "wss"):
                raise HandshakeError("malformed ws or wss URL")
            duplicate = next((key for key, _ in headers if key in _HANDSHAKE_HEADERS), None)
            if duplicate:
                raise HandshakeError(f"websocket: duplicate header not allowed: {duplicate}")
            secure = url.scheme == "wss"
            port = explicit_port or (443 if secure else 80)
            try:
                reader, writer = await asyncio.open_connection(ip, port)
            except OSError as err:
                raise HandshakeError(f"dial tcp {join_host_port(ip, port)}: {describe_os_error(err)}") from None
            connect_time = time.monotonic() - dial_start
            durations.labels("connect").add(connect_time)
            if secure:
                try:
                    await writer.start_tls(context, server_hostname=tls.server_name or host,
                                           ssl_handshake_timeout=max(ctx.timeout, 0.001))
                except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
                    writer.close()
                    raise HandshakeError(describe_os_error(err)) from None
            session = await _open(url, headers, reader, writer)
        finally:
            durations.labels("processing").add(max(time.monotonic() - dial_start - connect_time, 0.0))
    except HandshakeError as err:
        log.error("Error dialing websocket", err=str(err))
        status_gauge.set(err.status)
        return False
    except asyncio.CancelledError:
        log.error("Error dialing websocket", err="i/o timeout (probe deadline)")
        if writer is not None:
            writer.close()
        raise
    status_gauge.set(101)
    upgraded_gauge.set(1)
    try:
        return await _run_query_response(cfg, session, durations, regex_gauge, log)
    finally:
        session.close()


async def _open(url: urllib.parse.SplitResult, headers: list[tuple[str, str]], reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> Session:
    """The websocket handshake over a dialled (and, for wss, TLS) stream; closes it on failure."""
    host_header = next((value for key, value in headers if key == "Host"), None)
    subprotocols = [Subprotocol(part.strip()) for key, value in headers if key == "Sec-Websocket-Protocol"
                    for part in value.split(",") if part.strip()]
    try:
        protocol = ClientProtocol(parse_uri(url.geturl()), subprotocols=subprotocols or None, max_size=MAX_MESSAGE)
        session = Session(protocol, reader, writer)
        await session.handshake(_build_request(protocol, headers, host_header))
    except InvalidURI as err:
        writer.close()
        raise HandshakeError(str(err)) from None
    except HandshakeError:
        writer.close()
        raise
    except (OSError, ValueError) as err:
        writer.close()
        raise HandshakeError(describe_os_error(err)) from None
    return session


async def _run_query_response(cfg: WebsocketProbe, session: Session, durations: GaugeVec, regex_gauge: Gauge,
                              log: ProbeLog) -> bool:
    if not cfg.query_response:
        return True
    transfer_start = time.monotonic()
    failed = True
    try:
        for step in cfg.query_response:
            send = step.send or b""
            if step.expect is not None:
                try:
                    message = await session.read_message()
                except (MessageError, OSError) as err:
                    log.error("Error reading message", err=describe_os_error(err))
                    return False
                match = step.expect.compiled.search(message)
                shown = message.decode("utf-8", errors="backslashreplace")
                if match is None:
                    log.error("Regexp did not match", regexp=step.expect.pattern, line=shown)
                    return False
                log.debug("regexp matched", regexp=step.expect.pattern, line=shown)
                spans = [match.span(group) for group in range(step.expect.compiled.groups + 1)]
                send = go_expand(send, message, spans, dict(step.expect.compiled.groupindex))
            if send:
                try:
                    await session.send_text(send)
                except (OSError, WebSocketException) as err:
                    log.error("Error sending message", err=describe_os_error(err))
                    return False
                log.debug("message sent", message=send.decode("utf-8", errors="backslashreplace"))
        failed = False
        return True
    except asyncio.CancelledError:
        log.error("Error reading message", err="i/o timeout (probe deadline)")
        raise
    finally:
        regex_gauge.set(1 if failed else 0)
        durations.labels("transfer").add(time.monotonic() - transfer_start)


PROBER = Prober(name="websocket", probe=probe_websocket, config_model=WebsocketProbe)

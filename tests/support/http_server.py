"""Real local HTTP servers for the prober tests: HTTP/1.1, HTTPS (HTTP/2 via ALPN) and hostile targets.

Each test registers a handler with `server.route(handler)` and gets back a URL under a path prefix of
its own, so tests sharing one server never see each other's requests. A handler receives a `Req` and
returns a `Resp`, or a `Takeover` that gets the raw socket (to hang, reset, or write garbage).
"""

from __future__ import annotations

import itertools
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import trustme

# --- requests and responses ------------------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str  # relative to the route prefix, "/" at least
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    host: str
    version: str  # "HTTP/1.1", "HTTP/2"
    tls: bool
    server_name: str | None = None  # SNI the client sent
    prefix: str = ""  # the route's path prefix, for Location headers

    def header(self, name: str) -> str | None:
        values = self.header_list(name)
        return values[0] if values else None

    def header_list(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class Resp:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    # Add Content-Length (as Go's server does for small bodies); False leaves the length unknown
    # (HTTP/1.1: read until close).
    content_length: bool = True
    chunked: bool = False
    version: str = "HTTP/1.1"


@dataclass
class Takeover:
    """Hand the connection to `action` after the request was read (hang, reset, garbage, floods)."""

    action: Callable[[socket.socket], None]


Handler = Callable[[Req], "Resp | Takeover"]

_REASONS = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found",
            303: "See Other", 307: "Temporary Redirect", 308: "Permanent Redirect", 401: "Unauthorized",
            404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


def redirect(location: str, status: int = 302, headers: list[tuple[str, str]] | None = None) -> Resp:
    return Resp(status=status, headers=[("Location", location), *(headers or [])])


# --- the server ------------------------------------------------------------------------------------


class LocalServer:
    """A threaded HTTP/1.1 (and, over TLS with ALPN h2, HTTP/2) server on 127.0.0.1."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.scheme = "https" if ssl_context else "http"
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self._listener.getsockname()[1]
        self.base = f"{self.scheme}://127.0.0.1:{self.port}"
        self._routes: dict[str, Handler] = {}
        self._ids = itertools.count(1)
        self._closing = threading.Event()
        self.requests: dict[str, list[Req]] = {}
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def route(self, handler: Handler) -> str:
        prefix = f"/r{next(self._ids)}"
        self._routes[prefix] = handler
        self.requests[prefix] = []
        return self.base + prefix

    def seen(self, url: str) -> list[Req]:
        """The requests a route received, in order."""
        prefix = "/" + url.split("/", 3)[3].split("/", 1)[0]
        return self.requests[prefix]

    def close(self) -> None:
        self._closing.set()
        self._listener.close()

    def wait_closing(self, seconds: float) -> None:
        self._closing.wait(seconds)

    # -- plumbing --

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        sni: str | None = None
        try:
            if self.ssl_context is not None:
                conn.settimeout(10)
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
                sni = getattr(conn, "sni_seen", None)
                if conn.selected_alpn_protocol() == "h2":
                    self._serve_h2(conn, sni)
                    return
            conn.settimeout(30)
            self._serve_h1(conn, sni)
        except (OSError, ssl.SSLError, ValueError, h2.exceptions.ProtocolError):
            pass  # a client that breaks the protocol (a test's point, often) just loses its connection
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _dispatch(self, req: Req) -> Resp | Takeover:
        prefix = "/" + req.path.lstrip("/").split("/", 1)[0]
        handler = self._routes.get(prefix)
        if handler is None:
            return Resp(status=404, body=b"no such route\n")
        rest = req.path[len(prefix):]
        req.path = rest if rest.startswith("/") else "/" + rest
        req.prefix = prefix
        self.requests[prefix].append(req)
        return handler(req)

    def _serve_h1(self, conn: socket.socket, sni: str | None) -> None:
        reader = conn.makefile("rb")
        while True:
            line = reader.readline(65536)
            if not line:
                return
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            headers: list[tuple[str, str]] = []
            while True:
                raw = reader.readline(65536).decode("latin-1").rstrip("\r\n")
                if not raw:
                    break
                name, _, value = raw.partition(":")
                headers.append((name.strip(), value.strip()))
            lower = {k.lower(): v for k, v in headers}
            body = b""
            if "content-length" in lower:
                body = reader.read(int(lower["content-length"]))
            elif lower.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(reader.readline().split(b";")[0], 16)
                    if size == 0:
                        reader.readline()
                        break
                    chunks.append(reader.read(size))
                    reader.readline()
                body = b"".join(chunks)
            path, _, query = target.partition("?")
            if "://" in path:  # absolute form (we are somebody's proxy target)
                path = "/" + path.split("://", 1)[1].partition("/")[2]
            req = Req(method=method, path=path, query=query, headers=headers, body=body,
                      host=lower.get("host", ""), version=version, tls=self.ssl_context is not None,
                      server_name=sni)
            result = self._dispatch(req)
            if isinstance(result, Takeover):
                result.action(conn)
                return
            conn.sendall(_h1_bytes(result, head=method == "HEAD"))
            if lower.get("connection", "").lower() == "close" or version == "HTTP/1.0" or (
                    not result.content_length and not result.chunked):
                return

    def _serve_h2(self, conn: ssl.SSLSocket, sni: str | None) -> None:
        h2conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False,
                                                                            header_encoding="utf-8"))
        h2conn.initiate_connection()
        conn.sendall(h2conn.data_to_send())
        streams: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        while True:
            data = conn.recv(65536)
            if not data:
                return
            for event in h2conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    streams[event.stream_id] = (list(event.headers), bytearray())  # type: ignore[arg-type]
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id][1].extend(event.data)
                    h2conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    pseudo, body = streams.pop(event.stream_id)
                    fields = dict(pseudo)
                    path, _, query = fields.get(":path", "/").partition("?")
                    req = Req(method=fields.get(":method", "GET"), path=path, query=query,
                              headers=[(k, v) for k, v in pseudo if not k.startswith(":")], body=bytes(body),
                              host=fields.get(":authority", ""), version="HTTP/2", tls=True, server_name=sni)
                    result = self._dispatch(req)
                    if isinstance(result, Takeover):
                        result.action(conn)
                        return
                    head = [(":status", str(result.status))] + [(k.lower(), v) for k, v in result.headers]
                    if result.content_length and not any(k.lower() == "content-length" for k, _ in result.headers):
                        head.append(("content-length", str(len(result.body))))
                    h2conn.send_headers(event.stream_id, head, end_stream=not result.body)
                    if result.body:
                        h2conn.send_data(event.stream_id, result.body, end_stream=True)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    conn.sendall(h2conn.data_to_send())
                    return
            conn.sendall(h2conn.data_to_send())


def _h1_bytes(resp: Resp, head: bool = False) -> bytes:
    lines = [f"{resp.version} {resp.status} {_REASONS.get(resp.status, 'Status')}"]
    names = {k.lower() for k, _ in resp.headers}
    lines += [f"{k}: {v}" for k, v in resp.headers]
    no_body_status = resp.status in (204, 304) or resp.status < 200
    if resp.chunked:
        lines.append("Transfer-Encoding: chunked")
    elif resp.content_length and "content-length" not in names and not no_body_status:
        lines.append(f"Content-Length: {len(resp.body)}")
    if not resp.content_length and not resp.chunked:
        lines.append("Connection: close")
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if head or no_body_status:
        return out
    if resp.chunked:
        return out + (f"{len(resp.body):x}\r\n".encode() + resp.body + b"\r\n" if resp.body else b"") + b"0\r\n\r\n"
    return out + resp.body


# --- certificates ----------------------------------------------------------------------------------


@dataclass
class TLSMaterial:
    ca: trustme.CA
    server_cert: trustme.LeafCert
    ca_file: Path  # PEM of the CA, for tls_config.ca_file

    def server_context(self, alpn: list[str]) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_cert.configure_cert(ctx)
        ctx.set_alpn_protocols(alpn)
        ctx.sni_callback = _remember_sni
        return ctx


def _remember_sni(sock: ssl.SSLSocket | ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
    sock.sni_seen = server_name  # type: ignore[union-attr]

"""One round trip of an HTTP probe, whichever client makes it: what is sent (HopRequest), what comes
back (HopResponse), and the adapter for httpcore-shaped connections (HTTP/2, proxies, HTTP/3)."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpcore

from probe_exporter.probers.http.timings import Trace


@dataclass(slots=True)
class HopRequest:
    method: str
    scheme: str
    dial_host: str  # the address (or, through a proxy or over HTTP/3, the name) to connect to
    port: int
    target: str  # the request target: path and query
    headers: list[tuple[bytes, bytes]]
    body: bytes | None
    chunked: bool  # body_file: Go sends it chunked, as it does not know its length
    sni: str
    trace: Trace


class HopResponse(Protocol):
    status: int
    headers: list[tuple[bytes, bytes]]
    http_version: str  # Go's resp.Proto: HTTP/1.1, HTTP/2.0, HTTP/3.0
    ssl_object: ssl.SSLObject | Any | None  # what tls_info reads the certificates from

    def body(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class _BodyStream:
    """A request body httpcore can send (async iterable), for body_file's chunked upload."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> Any:
        yield self.data


_GO_PROTO = {b"HTTP/2": "HTTP/2.0", b"HTTP/3": "HTTP/3.0"}


class CoreResponse:
    """An httpcore response as a HopResponse; closing it closes the hop's own connection."""

    __slots__ = ("_conn", "_owned", "_response", "headers", "http_version", "ssl_object", "status")

    def __init__(self, response: httpcore.Response, connection: Any, owned: bool) -> None:
        self._response = response
        self._conn = connection
        self._owned = owned
        self.status = response.status
        self.headers = response.headers
        version = response.extensions.get("http_version", b"HTTP/1.1")
        self.http_version = _GO_PROTO.get(version) or version.decode("ascii", "replace")
        stream = response.extensions.get("network_stream")
        self.ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None

    def body(self) -> AsyncIterator[bytes]:
        return self._response.aiter_stream()

    async def aclose(self) -> None:
        await close_quietly(self._conn, self._owned, self._response)


async def core_exchange(connection: Any, owned: bool, hop: HopRequest) -> CoreResponse:
    """The hop on an httpcore-shaped connection (one of its own, or a shared proxy pool)."""
    extensions: dict[str, Any] = {"trace": hop.trace}
    if hop.scheme == "https":
        extensions["sni_hostname"] = hop.sni
    content: Any = None if hop.body is None else (_BodyStream(hop.body) if hop.chunked else hop.body)
    try:
        url = httpcore.URL(scheme=hop.scheme, host=hop.dial_host, port=hop.port, target=hop.target)
        request = httpcore.Request(hop.method, url, headers=hop.headers, content=content, extensions=extensions)
        response = await connection.handle_async_request(request)
    except BaseException:  # an error or the deadline: leave no half-open connection behind
        await close_quietly(connection, owned, None)
        raise
    return CoreResponse(response, connection, owned)


async def close_quietly(connection: Any, owned: bool, response: httpcore.Response | None) -> None:
    try:
        if response is not None:
            await response.aclose()
        if owned:
            await connection.aclose()
    except Exception:  # closing a broken connection must not change the outcome
        pass


# A bytes literal in an error message: h11 and h2 quote the header value they refuse to send
# (`Illegal header value b'Bearer ...'`), which may be a credential.
_QUOTED_BYTES = re.compile(r"""(?:bytearray\()?b(['"]).*""", re.DOTALL)


def describe(err: BaseException) -> str:
    """The error as one line, without the request (whose headers may carry credentials)."""
    text = str(err) or type(err).__name__
    if isinstance(err, httpcore.LocalProtocolError):  # what we tried to send is in the message
        text = _QUOTED_BYTES.sub("<redacted>", text)
    return f"{type(err).__name__}: {' '.join(text.split())}"

"""`--web.external-url` and `--web.route-prefix`, as blackbox_exporter (Prometheus' computeExternalURL):
behind a reverse proxy at https://proxy/blackbox/, every route is served under /blackbox and `/`
redirects to the external URL."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def external_url(flag: str, listen_address: str) -> str:
    """The exporter's URL as users reach it. Raises ValueError as upstream does for a bad value."""
    if not flag:
        port = listen_address.rpartition(":")[2]
        flag = f"http://{socket.gethostname()}:{port}/"
    if flag.startswith(('"', "'")):
        raise ValueError("URL must not begin with quotes")
    parts = urlsplit(flag)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"--web.external-url {flag!r} is not an absolute URL")
    path = parts.path.rstrip("/")
    if path and not path.startswith("/"):
        path = "/" + path
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def route_prefix(flag: str, external: str) -> str:
    """`--web.route-prefix`, by default the external URL's path; always `/` or `/a/b` (no trailing `/`)."""
    prefix = flag or urlsplit(external).path
    return "/" + prefix.strip("/")


class RoutePrefixMiddleware:
    """Serves the app's routes under `prefix`: /prefix/x reaches /x (root_path records the prefix),
    /prefix redirects to /prefix/, `/` redirects to the external URL, and anything else is 404."""

    def __init__(self, app: ASGIApp, prefix: str, external: str) -> None:
        self.app = app
        self.prefix = prefix
        self.external = external

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(self.prefix + "/"):
            scope = dict(scope, path=path[len(self.prefix):], root_path=scope.get("root_path", "") + self.prefix)
            await self.app(scope, receive, send)
        elif path == "/":
            await _answer(send, 302, b"", [(b"location", (self.external + "/").encode())])
        elif path == self.prefix:
            await _answer(send, 302, b"", [(b"location", (self.prefix + "/").encode())])
        else:
            await _answer(send, 404, b"404 page not found\n", [(b"content-type", b"text/plain; charset=utf-8")])


async def _answer(send: Callable[[Any], Awaitable[None]], status: int, body: bytes,
                  headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

"""`--web.config.file` applied: the exporter-toolkit web config that Prometheus users already have.

TLS (`tls_server_config`), response headers (`http_server_config.headers`), basic auth with bcrypt
hashes (`basic_auth_users`) and a token-bucket `rate_limit`, applied to every endpoint by one ASGI
middleware (so /probe, /config, /logs and /-/reload are covered the same as /metrics).

Like the toolkit, the file is read again when it changes (checked at most once a second), so users
and headers change without a restart; a file that no longer loads fails closed with a 500. TLS
settings are read at startup; certificate files are re-read on change for new connections.

`client_allowed_sans` is checked once the handshake is done (web/serve.py closes the connection
before any request is read when no SAN matches). The file's schema is probe_exporter.config.web.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import bcrypt

from probe_exporter import logs
from probe_exporter.config.errors import ConfigError
from probe_exporter.config.types import Secret
from probe_exporter.config.web import RateLimitConfig, WebConfig, load_web_config

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

def client_sans_allowed(peercert: dict[str, Any] | None, allowed: list[str]) -> bool:
    """Whether a verified client certificate has a SAN (DNS, e-mail, IP or URI) listed in `allowed`."""
    if not peercert:
        return False
    wanted = {_normal_san(value) for value in allowed}
    return any(_normal_san(value) in wanted for _kind, value in peercert.get("subjectAltName", ()))


def _normal_san(value: str) -> str:
    # Python writes IPv6 SANs in full upper case (2001:DB8:0:0:...); compare addresses as addresses.
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return value


class WebConfigSource:
    """The web config file, re-read when it changes (looked at no more than once a second)."""

    CHECK_INTERVAL = 1.0

    def __init__(self, path: str) -> None:
        self.path = path
        self.config = load_web_config(path)
        self.broken = ""
        self._stamp = self._file_stamp()
        self._checked = time.monotonic()
        self._tls_context: ssl.SSLContext | None = None
        self._tls_stamp: tuple[float, ...] = ()

    def _file_stamp(self) -> tuple[float, int]:
        try:
            stat = os.stat(self.path)
        except OSError:
            return (0.0, -1)
        return (stat.st_mtime, stat.st_size)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The listener's context (built once; its certificate is reloaded in place on change)."""
        tls = self.config.tls_server_config
        if not tls.is_enabled():
            return None
        if self._tls_context is None:
            self._tls_context = tls.ssl_context()
            self._tls_stamp = self._cert_stamp()
        return self._tls_context

    def _cert_stamp(self) -> tuple[float, ...]:
        stamps: list[float] = []
        for path in self.config.tls_server_config.watched_files():
            try:
                stamps.append(os.stat(path).st_mtime)
            except OSError:
                stamps.append(0.0)
        return tuple(stamps)

    def current(self) -> WebConfig | None:
        """The config to apply to this request, or None when the file no longer loads (fail closed)."""
        now = time.monotonic()
        if now - self._checked >= self.CHECK_INTERVAL:
            self._checked = now
            self._maybe_reload()
        return None if self.broken else self.config

    def _maybe_reload(self) -> None:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.config = load_web_config(self.path)
            except ConfigError as err:
                self.broken = str(err)
                logs.log(logging.ERROR, "Unable to parse web configuration", err=str(err))
                return
            self.broken = ""
            logs.log(logging.INFO, "Reloaded web configuration", file=self.path)
        if self._tls_context is not None and self._cert_stamp() != self._tls_stamp:
            self._tls_stamp = self._cert_stamp()
            try:
                self.config.tls_server_config.load_certificate(self._tls_context)
                logs.log(logging.INFO, "Reloaded TLS certificate", file=self.path)
            except (OSError, ssl.SSLError) as err:
                logs.log(logging.ERROR, "Unable to reload TLS certificate, keeping the old one", err=str(err))


class _TokenBucket:
    def __init__(self, interval: float, burst: int) -> None:
        self.interval, self.burst = interval, burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) / self.interval)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class BasicAuthChecker:
    """bcrypt checks, one at a time in a worker thread (bcrypt is slow and CPU bound), with successful
    checks cached by a digest of (user, hash, password) so a scrape costs a dict lookup."""

    MAX_CACHED = 4096

    def __init__(self) -> None:
        self._verified: set[bytes] = set()
        self._lock = asyncio.Lock()
        self._decoy_hash: bytes | None = None

    async def check(self, users: dict[str, Secret], user: str, password: str) -> bool:
        hashed = users.get(user)
        known = hashed is not None
        hash_bytes = hashed.reveal().encode() if hashed is not None else self._decoy(users)
        key = hashlib.sha256(b"\0".join((user.encode(), hash_bytes, password.encode()))).digest()
        if known and key in self._verified:
            return True
        async with self._lock:
            ok = await asyncio.to_thread(_bcrypt_matches, password.encode(), hash_bytes)
        ok = ok and known  # an unknown user costs the same bcrypt round, so timing does not tell users apart
        if ok:
            if len(self._verified) >= self.MAX_CACHED:
                self._verified.clear()
            self._verified.add(key)
        return ok

    def _decoy(self, users: dict[str, Secret]) -> bytes:
        """A hash of nothing anyone knows, with the cost of the configured ones (so it takes as long)."""
        cost = int(next(iter(users.values())).reveal().split("$")[2]) if users else 10
        if self._decoy_hash is None or int(self._decoy_hash.split(b"$")[2]) != cost:
            self._decoy_hash = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(cost))
        return self._decoy_hash


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False


def _basic_credentials(header: bytes) -> tuple[str, str] | None:
    scheme, _, encoded = header.decode("latin-1").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        *headers, (b"content-type", b"text/plain; charset=utf-8"), (b"x-content-type-options", b"nosniff"),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class WebSecurityMiddleware:
    """Rate limit, then response headers, then basic auth, for every HTTP request (the toolkit's order)."""

    def __init__(self, app: ASGIApp, source: WebConfigSource) -> None:
        self.app = app
        self.source = source
        self.auth = BasicAuthChecker()
        self._bucket: _TokenBucket | None = None
        self._bucket_config: RateLimitConfig | None = None

    def _limiter(self, config: WebConfig) -> _TokenBucket | None:
        if config.rate_limit != self._bucket_config:
            self._bucket_config = config.rate_limit
            self._bucket = (_TokenBucket(config.rate_limit.interval, config.rate_limit.burst)
                            if config.rate_limit.interval > 0 else None)
        return self._bucket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        config = self.source.current()
        if config is None:
            await _plain(send, 500, "Internal Server Error", [])
            return
        bucket = self._limiter(config)
        if bucket is not None and not bucket.allow():
            await _plain(send, 429, "Too Many Requests", [])
            return
        extra = [(name.lower().encode(), value.encode()) for name, value in config.http_server_config.headers.items()]
        if config.basic_auth_users and not await self._authorized(scope, config):
            await _plain(send, 401, "Unauthorized", [*extra, (b"www-authenticate", b"Basic")])
            return
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in extra}
                message["headers"] = [*(h for h in message.get("headers", []) if h[0].lower() not in names),
                                      *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _authorized(self, scope: Scope, config: WebConfig) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                credentials = _basic_credentials(value)
                if credentials is None:
                    return False
                return await self.auth.check(config.basic_auth_users, *credentials)
        return False

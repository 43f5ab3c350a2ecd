"""`--web.config.file`: the exporter-toolkit web config that Prometheus users already have.

TLS (`tls_server_config`), response headers (`http_server_config.headers`), basic auth with bcrypt
hashes (`basic_auth_users`) and a token-bucket `rate_limit`, applied to every endpoint by one ASGI
middleware (so /probe, /config, /logs and /-/reload are covered the same as /metrics).

Like the toolkit, the file is read again when it changes (checked at most once a second), so users
and headers change without a restart; a file that no longer loads fails closed with a 500. TLS
settings are read at startup; certificate files are re-read on change for new connections.

`client_allowed_sans` is checked once the handshake is done (web/serve.py closes the connection
before any request is read when no SAN matches).

What Python's ssl module cannot do is refused with a clear error instead of silently weakened:
`RequestClientCert`/`RequireAnyClientCert` (ssl always verifies a client certificate it asks for)
and `curve_preferences`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import logging
import os
import re
import ssl
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

import bcrypt
from pydantic import Field, field_validator, model_validator

from probe_exporter import logs
from probe_exporter.config.errors import ConfigError, validate_model
from probe_exporter.config.tls import load_cert_chain
from probe_exporter.config.types import GoDuration, Secret, StrictModel

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                 "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

# Go's crypto/tls names (what the toolkit accepts) -> OpenSSL names. TLS 1.3 suites are not configurable,
# in Go as in OpenSSL's cipher list.
_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}

_CLIENT_AUTH = {
    "": ssl.CERT_NONE,
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")

# The toolkit's closed list of settable response headers, with the values it accepts where it checks them.
_ALLOWED_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}

_BCRYPT_HASH = re.compile(r"^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$")


class TLSServerConfig(StrictModel):
    cert: str | None = None
    key: Secret | None = None
    client_ca: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    client_allowed_sans: list[str] | None = None
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"
    cipher_suites: list[str] = Field(default_factory=list)
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[str] = Field(default_factory=list)

    def is_enabled(self) -> bool:
        return any((self.cert, self.key, self.client_ca, self.cert_file, self.key_file, self.client_ca_file,
                    self.client_auth_type not in ("", "NoClientCert")))

    @model_validator(mode="after")
    def _check(self) -> TLSServerConfig:
        if not self.is_enabled():
            return self
        if not (self.cert or self.cert_file):
            raise ValueError("missing one of cert or cert_file")
        if not (self.key or self.key_file):
            raise ValueError("missing one of key or key_file")
        if self.client_auth_type in _UNSUPPORTED_CLIENT_AUTH:
            raise ValueError(f"client_auth_type {self.client_auth_type} is not supported: Python's ssl verifies "
                             "every client certificate it asks for; use VerifyClientCertIfGiven or "
                             "RequireAndVerifyClientCert with client_ca_file")
        if self.client_auth_type not in _CLIENT_AUTH:
            raise ValueError(f"invalid ClientAuth: {self.client_auth_type}")
        has_ca = bool(self.client_ca or self.client_ca_file)
        if has_ca and _CLIENT_AUTH[self.client_auth_type] == ssl.CERT_NONE:
            raise ValueError("client CA's have been configured without a Client Auth Policy")
        if not has_ca and _CLIENT_AUTH[self.client_auth_type] != ssl.CERT_NONE:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file or client_ca")
        if self.client_allowed_sans is not None and self.client_auth_type != "RequireAndVerifyClientCert":
            raise ValueError("client_allowed_sans requires client_auth_type to be RequireAndVerifyClientCert")
        if self.curve_preferences:
            raise ValueError("curve_preferences is not supported: Python's ssl module cannot set a curve list")
        for name in self.cipher_suites:
            if name not in _CIPHERS:
                raise ValueError(f"unknown cipher: {name}")
        if _TLS_VERSIONS[self.min_version] > _TLS_VERSIONS[self.max_version]:
            raise ValueError("min_version must not be greater than max_version")
        return self

    def with_base_dir(self, base_dir: str) -> TLSServerConfig:
        """File paths relative to the web config file, as the toolkit's SetDirectory does."""
        def join(path: str | None) -> str | None:
            return os.path.join(base_dir, path) if path and not os.path.isabs(path) else path

        return self.model_copy(update={"cert_file": join(self.cert_file), "key_file": join(self.key_file),
                                       "client_ca_file": join(self.client_ca_file)})

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = _TLS_VERSIONS[self.min_version]
        ctx.maximum_version = _TLS_VERSIONS[self.max_version]
        if self.cipher_suites:
            ctx.set_ciphers(":".join(_CIPHERS[name] for name in self.cipher_suites))
        if self.prefer_server_cipher_suites:
            ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        self.load_certificate(ctx)
        ctx.verify_mode = _CLIENT_AUTH[self.client_auth_type]
        if self.client_ca_file:
            ctx.load_verify_locations(cafile=self.client_ca_file)
        elif self.client_ca:
            ctx.load_verify_locations(cadata=self.client_ca)
        return ctx

    def load_certificate(self, ctx: ssl.SSLContext) -> None:
        """(Re)load the server certificate into `ctx`; new connections use it from then on."""
        load_cert_chain(ctx, self.cert_file, self.key_file, self.cert, self.key)

    def watched_files(self) -> list[str]:
        return [path for path in (self.cert_file, self.key_file) if path]


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


class HTTPServerConfig(StrictModel):
    # Accepted for compatibility; uvicorn serves HTTP/1.1 only, so this changes nothing.
    http2: bool = True
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if name not in _ALLOWED_HEADERS:
                raise ValueError(f'HTTP header "{name}" can not be configured')
            allowed = _ALLOWED_HEADERS[name]
            if allowed and value not in allowed:
                raise ValueError(f"invalid value for {name}. Expected one of: {list(allowed)}, but got: {value!r}")
            if "\n" in value or "\r" in value:
                raise ValueError(f"invalid value for {name}: line breaks are not allowed")
        return headers


class RateLimitConfig(StrictModel):
    interval: GoDuration = 0.0
    burst: int = 0

    @model_validator(mode="after")
    def _check(self) -> RateLimitConfig:
        if self.interval < 0 or self.burst < 0:
            raise ValueError("rate_limit interval and burst must not be negative")
        if self.interval > 0 and self.burst < 1:
            raise ValueError("rate_limit.burst must be at least 1 when rate_limit.interval is set "
                             "(with 0 every request would be refused)")
        return self


class WebConfig(StrictModel):
    tls_server_config: TLSServerConfig = Field(default_factory=TLSServerConfig)
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)
    basic_auth_users: dict[str, Secret] = Field(default_factory=dict)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)

    @field_validator("basic_auth_users")
    @classmethod
    def _check_hashes(cls, users: dict[str, Secret]) -> dict[str, Secret]:
        for user, hashed in users.items():
            if not _BCRYPT_HASH.match(hashed.reveal()):
                # The hash itself is not repeated: it is as sensitive as a password to brute-force.
                raise ValueError(f"basic_auth_users.{user}: not a bcrypt hash (make one with "
                                 "`htpasswd -nBC 10 \"\" | tr -d ':\\n'`)")
        return users


def load_web_config(path: str) -> WebConfig:
    """Read and check a web config file; ConfigError (with file:line) on any problem."""
    from probe_exporter.config.yamlfile import load_yaml_file

    data, lines = load_yaml_file(path)
    config: WebConfig = validate_model(WebConfig, data or {}, lines, path, ())
    tls = config.tls_server_config.with_base_dir(os.path.dirname(os.path.abspath(path)))
    config = config.model_copy(update={"tls_server_config": tls})
    if tls.is_enabled():
        try:
            tls.ssl_context()
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"tls_server_config: {err}", file=path) from None
    return config


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

"""What a driver needs to connect, built per probe; credentials kept apart from anything printable."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from probe_exporter.config.sql import SQLModule
from probe_exporter.config.types import Secret
from probe_exporter.masking import SECRET_MARK, is_secret_parameter, mask, with_encoded_forms
from probe_exporter.modulecache import CacheKey
from probe_exporter.probers.sql.target import Endpoint

APPLICATION_NAME = "probe_exporter"


def _build_now(key: CacheKey[Any], build: Callable[[], Any]) -> Any:
    return build()


@dataclass
class ConnectSpec:
    driver: str
    display: str                       # scheme://user@host:port/db, never a password
    host: str | None = None
    port: int | None = None
    socket: str | None = None
    path: str | None = None
    database: str | None = None
    connect_address: str | None = None
    username: str | None = None
    password: Secret | None = None
    options: dict[str, str] = field(default_factory=dict)
    session: dict[str, str] = field(default_factory=dict)
    url: str | None = None             # sqlalchemy: the rendered template, without credentials
    statement_timeout: float = 0.0     # server-side cap, seconds; set by the executor at connect
    # The module's Module.cached: what a driver builds once per module (a TLS context).
    cached: Callable[[CacheKey[Any], Callable[[], Any]], Any] = field(default=_build_now, repr=False)

    def secrets(self) -> list[str]:
        """Strings that must never be shown: scrubbed out of every driver error message."""
        found = [value for key, value in self.options.items() if is_secret_parameter(key) and value]
        return [self.password.reveal(), *found] if self.password else found


def _url_host(host: str) -> str:
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            return f"[{host}]"
    except ValueError:
        pass
    return quote(host, safe="")


def build_spec(sql: SQLModule, endpoint: Endpoint) -> ConnectSpec:
    """Raises OSError/KeyError (with secret-free messages) when a credential source cannot be read."""
    spec = ConnectSpec(driver=sql.driver, display="", host=endpoint.host, port=endpoint.port,
                       socket=endpoint.socket, path=endpoint.path, database=endpoint.database,
                       connect_address=endpoint.connect_address, options=dict(sql.options),
                       session=dict(sql.session))
    if sql.dsn:
        _apply_dsn(spec, sql.dsn, endpoint)
    if sql.auth is not None:
        username, password = sql.auth.resolve()
        spec.username = username if username is not None else spec.username
        spec.password = password if password is not None else spec.password
    spec.display = _display(spec)
    return spec


def _apply_dsn(spec: ConnectSpec, template: str, endpoint: Endpoint) -> None:
    values = {
        "host": _url_host(endpoint.host) if endpoint.host else "",
        "port": str(endpoint.port or ""),
        "target": quote(endpoint.host or endpoint.socket or endpoint.path or "", safe="/"),
        "path": quote(endpoint.socket or endpoint.path or "", safe="/"),
        "database": quote(endpoint.database or "", safe=""),
    }
    rendered = template
    for name, value in values.items():
        rendered = rendered.replace("{" + name + "}", value)
    parts = urlsplit(rendered)
    if parts.password is not None:
        spec.password = Secret(unquote(parts.password))
    if parts.username:
        spec.username = unquote(parts.username)
    # Credentials leave the URL (they are injected at connect); the rest stays byte for byte
    # (urlunsplit would turn sqlite:////abs/path into sqlite://abs/path).
    spec.url = rendered
    if "@" in parts.netloc:
        spec.url = rendered.replace(parts.netloc, parts.netloc.rpartition("@")[2], 1)
    if spec.driver == "sqlalchemy":
        return
    if parts.hostname and not spec.socket:
        spec.host = parts.hostname
    if parts.port:
        spec.port = parts.port
    database = unquote(parts.path.lstrip("/"))
    if database:
        spec.database = database
    for key, value in parse_qsl(parts.query):
        spec.options.setdefault(key, value)


def _display(spec: ConnectSpec) -> str:
    user = f"{spec.username}{':' + SECRET_MARK if spec.password else ''}@" if spec.username else ""
    if spec.driver == "sqlite":
        return f"sqlite:///{spec.path or ''}"
    if spec.driver == "sqlalchemy":
        url = mask(spec.url or "")  # the query string may hold a password-like parameter
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}{user}{rest}" if sep else url
    where = spec.socket or (f"{_url_host(spec.host)}:{spec.port}" if spec.host else "")
    return f"{spec.driver}://{user}{where}/{spec.database or ''}"


def scrub(text: str, secrets: list[str]) -> str:
    """A driver message with every secret masked, so an error can be logged and shown. Drivers may
    quote a secret as it stood in a URL, so the URL-encoded forms go too."""
    return mask(text, with_encoded_forms(secrets, min_length=1))  # a driver error names the password it got

"""The schema of `--web.config.file`, the exporter-toolkit web config: TLS (`tls_server_config`),
response headers (`http_server_config.headers`), bcrypt `basic_auth_users` and `rate_limit`.
probe_exporter.web.security applies it to every request.

What Python's ssl module cannot do is refused with a clear error instead of silently weakened:
`RequestClientCert`/`RequireAnyClientCert` (ssl always verifies a client certificate it asks for)
and `curve_preferences`.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Literal

from pydantic import Field, field_validator, model_validator

from probe_exporter.config.errors import ConfigError, validate_model
from probe_exporter.config.tls import load_cert_chain
from probe_exporter.config.types import GoDuration, Secret, StrictModel

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

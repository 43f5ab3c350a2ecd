"""prometheus/common `tls_config` and the SSL contexts built from it."""

from __future__ import annotations

import os
import ssl
import tempfile
from typing import Literal

from pydantic import model_validator

from probe_exporter.config.types import Secret, StrictModel

TLSVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


class TLSConfig(StrictModel):
    ca: str | None = None
    cert: str | None = None
    key: Secret | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    ca_ref: str | None = None
    cert_ref: str | None = None
    key_ref: Secret | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    min_version: TLSVersion | None = None
    max_version: TLSVersion | None = None

    @model_validator(mode="after")
    def _check(self) -> TLSConfig:
        for what in ("ca", "cert", "key"):
            if getattr(self, what) and getattr(self, f"{what}_file"):
                raise ValueError(f"at most one of {what} and {what}_file must be configured")
        if bool(self.cert or self.cert_file) != bool(self.key or self.key_file):
            raise ValueError("exactly one of key or key_file must be configured when a client certificate is set")
        if self.min_version and self.max_version and (
                _TLS_VERSIONS[self.min_version] > _TLS_VERSIONS[self.max_version]):
            raise ValueError("tls_config.max_version must be greater than or equal to tls_config.min_version "
                             "if both are specified")
        return self

    def ssl_context(self, *, alpn: list[str] | None = None) -> ssl.SSLContext:
        """A client context; Go's defaults: TLS 1.2 minimum, system roots unless a CA is given."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = _TLS_VERSIONS[self.min_version or "TLS12"]
        if self.max_version:
            ctx.maximum_version = _TLS_VERSIONS[self.max_version]
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.ca:
            ctx.load_verify_locations(cadata=self.ca)
        elif self.ca_file:
            ctx.load_verify_locations(cafile=self.ca_file)
        else:
            ctx.load_default_certs()
        if self.cert or self.cert_file:
            load_cert_chain(ctx, self.cert_file, self.key_file, self.cert, self.key)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx


def load_cert_chain(ctx: ssl.SSLContext, cert_file: str | None, key_file: str | None, cert: str | None,
                    key: Secret | None) -> None:
    """Load a certificate and key given as files or inline PEM (client certs here, the web server's
    certificate in config/web.py)."""
    if cert_file and key_file:
        ctx.load_cert_chain(cert_file, key_file)
        return
    # ssl loads certificates only from files: inline PEM goes through a private temporary directory.
    with tempfile.TemporaryDirectory() as tmp:
        cert_path = cert_file or os.path.join(tmp, "cert.pem")
        key_path = key_file or os.path.join(tmp, "key.pem")
        if cert:
            _write_private(cert_path, cert)
        if key:
            _write_private(key_path, key.reveal())
        ctx.load_cert_chain(cert_path, key_path)


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)

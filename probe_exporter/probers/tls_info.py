"""TLS metrics shared by the HTTP, TCP and gRPC probers, valued as blackbox_exporter's prober/tls.go."""

from __future__ import annotations

import hashlib
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from probe_exporter.probe_metrics import ProbeMetrics

# Go's zero time.Time as a Unix timestamp: what upstream reports when no chain was verified.
GO_ZERO_TIME = -62135596800.0

# Go's pkix attribute names, and the order Name.ToRDNSequence appends the parsed attributes in.
_GO_NAME_ORDER = [
    (NameOID.COUNTRY_NAME, "C"), (NameOID.STATE_OR_PROVINCE_NAME, "ST"), (NameOID.LOCALITY_NAME, "L"),
    (NameOID.STREET_ADDRESS, "STREET"), (NameOID.POSTAL_CODE, "POSTALCODE"), (NameOID.ORGANIZATION_NAME, "O"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "OU"), (NameOID.COMMON_NAME, "CN"), (NameOID.SERIAL_NUMBER, "SERIALNUMBER"),
]
_PARSED = {oid.dotted_string for oid, _ in _GO_NAME_ORDER}
_SINGLE = {NameOID.COMMON_NAME.dotted_string, NameOID.SERIAL_NUMBER.dotted_string}

_PRINTABLE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")

# OpenSSL cipher names -> the IANA names Go's tls.CipherSuiteName returns (TLS 1.3 names are equal).
_IANA_CIPHERS = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "ECDHE-RSA-AES128-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "ECDHE-ECDSA-AES128-SHA": "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "ECDHE-RSA-AES128-SHA": "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "ECDHE-ECDSA-AES256-SHA": "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "ECDHE-RSA-AES256-SHA": "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "AES128-GCM-SHA256": "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "AES256-GCM-SHA384": "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "AES128-SHA256": "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "AES128-SHA": "TLS_RSA_WITH_AES_128_CBC_SHA",
    "AES256-SHA": "TLS_RSA_WITH_AES_256_CBC_SHA",
    "DES-CBC3-SHA": "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "ECDHE-RSA-DES-CBC3-SHA": "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
}

_TLS_VERSION_NAMES = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}


def _go_escape(value: str) -> str:
    out = []
    for index, char in enumerate(value):
        if char in ',+"\\<>;' or (char == " " and index in (0, len(value) - 1)) or (char == "#" and index == 0):
            out.append("\\")
        out.append(char)
    return "".join(out)


def _der_string(value: str) -> str:
    """Hex DER of a string as Go's asn1.Marshal encodes it: PrintableString, else UTF8String."""
    raw = value.encode()
    tag = 0x13 if all(c in _PRINTABLE for c in value) else 0x0C
    length = len(raw)
    if length < 0x80:
        header = bytes([tag, length])
    else:
        size = length.to_bytes((length.bit_length() + 7) // 8, "big")
        header = bytes([tag, 0x80 | len(size)]) + size
    return (header + raw).hex()


def go_name_string(name: x509.Name) -> str:
    """crypto/x509/pkix Name.String(): canonical attribute order, reversed, Go escaping."""
    parsed: dict[str, list[str]] = {}
    extra: list[tuple[str, str]] = []
    for attribute in name:
        oid = attribute.oid.dotted_string
        value = attribute.value if isinstance(attribute.value, str) else attribute.value.decode("latin-1")
        if oid in _PARSED:
            if oid in _SINGLE:
                parsed[oid] = [value]  # Go keeps the last CommonName / SerialNumber
            else:
                parsed.setdefault(oid, []).append(value)
        else:
            extra.append((oid, value))
    sequence: list[list[str]] = [[f"{oid}=#{_der_string(value)}"] for oid, value in extra]
    for oid, short in _GO_NAME_ORDER:
        values = parsed.get(oid.dotted_string)
        if values:
            sequence.append([f"{short}={_go_escape(v)}" for v in values])
    return ",".join("+".join(rdn) for rdn in reversed(sequence))


def _not_after(cert: x509.Certificate) -> float:
    return cert.not_valid_after_utc.timestamp()


def _load(der_chain: list[bytes]) -> list[x509.Certificate]:
    return [x509.load_der_x509_certificate(der) for der in der_chain]


def _chain_der(ssl_object: Any, verified: bool) -> list[bytes]:
    # Public methods from Python 3.13 on; the private _sslobj has them since 3.10.
    holder = ssl_object if hasattr(ssl_object, "get_unverified_chain") else getattr(ssl_object, "_sslobj", None)
    method = getattr(holder, "get_verified_chain" if verified else "get_unverified_chain", None)
    if method is None:
        return []
    try:
        chain = method() or []
    except (ValueError, ssl.SSLError):
        return []
    der = ssl._ssl.ENCODING_DER  # type: ignore[attr-defined]
    return [c if isinstance(c, bytes) else c.public_bytes(der) for c in chain]


def register_tls_metrics(metrics: ProbeMetrics, ssl_object: Any, *, verified: bool, last_chain: bool = True,
                         cipher: bool = False) -> None:
    """Register and set the TLS block for a finished handshake. `verified` is False when
    insecure_skip_verify was set (no verified chains, as in Go)."""
    presented = _load(_chain_der(ssl_object, verified=False))
    if not presented:
        der = ssl_object.getpeercert(binary_form=True)
        presented = _load([der]) if der else []
    if not presented:
        return
    leaf = presented[0]
    metrics.gauge("probe_ssl_earliest_cert_expiry", "Returns last SSL chain expiry in unixtime").set(
        min(_not_after(c) for c in presented))
    if last_chain:
        expiry = GO_ZERO_TIME
        if verified:
            chain = _load(_chain_der(ssl_object, verified=True))
            if chain:
                expiry = min(_not_after(c) for c in chain)
        metrics.gauge("probe_ssl_last_chain_expiry_timestamp_seconds",
                      "Returns last SSL chain expiry in timestamp").set(expiry)
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = ",".join(sans.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns_names = ""
    serial = leaf.serial_number
    metrics.gauge_vec("probe_ssl_last_chain_info", "Contains SSL leaf certificate information",
                      ["fingerprint_sha256", "subject", "issuer", "subjectalternative", "serialnumber"]).labels(
        hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(), go_name_string(leaf.subject),
        go_name_string(leaf.issuer), dns_names, serial.to_bytes((serial.bit_length() + 7) // 8, "big").hex(),
    ).set(1)
    version = _TLS_VERSION_NAMES.get(ssl_object.version() or "", "unknown")
    metrics.gauge_vec("probe_tls_version_info", "Returns the TLS version used or NaN when unknown",
                      ["version"]).labels(version).set(1)
    if cipher:
        name = (ssl_object.cipher() or ("",))[0]
        metrics.gauge_vec("probe_tls_cipher_info", "Returns the TLS cipher negotiated during handshake",
                          ["cipher"]).labels(_IANA_CIPHERS.get(name, name)).set(1)


"""TLS metrics shared by the HTTP, TCP and gRPC probers, valued as blackbox_exporter's prober/tls.go."""

from __future__ import annotations

import datetime
import hashlib
import ssl
import warnings
import weakref
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
    for name_oid, short in _GO_NAME_ORDER:
        values = parsed.get(name_oid.dotted_string)
        if values:
            sequence.append([f"{short}={_go_escape(v)}" for v in values])
    return ",".join("+".join(rdn) for rdn in reversed(sequence))


def _not_after(cert: x509.Certificate) -> float:
    return float(int(cert.not_valid_after_utc.timestamp()))


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


# --- Go's VerifiedChains ---------------------------------------------------------------------------
#
# OpenSSL reports one verified chain; Go builds every chain from the leaf to a trusted root, and
# probe_ssl_last_chain_expiry_timestamp_seconds is the latest of their earliest expiries. With two
# roots of the same name and key (an old and a renewed one) the two differ, so the chains are rebuilt
# here from the presented certificates and the context's trust store.

_MAX_CHAINS = 16
_MAX_DEPTH = 10


class _Roots:
    """The context's CA certificates indexed by subject (parsed on first need, once per SSL context),
    and the summaries of chains seen through that context."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self._context = weakref.ref(context) if context is not None else None
        self._by_subject: dict[bytes, list[x509.Certificate]] | None = None
        self.ders: set[bytes] = set()
        self.summaries: dict[tuple[bytes, bool], _Summary] = {}

    @property
    def by_subject(self) -> dict[bytes, list[x509.Certificate]]:
        if self._by_subject is None:
            self._by_subject = {}
            context = self._context() if self._context is not None else None
            for der in context.get_ca_certs(binary_form=True) if context is not None else []:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # odd serials in system roots
                        cert = x509.load_der_x509_certificate(der)
                except ValueError:
                    continue
                self._by_subject.setdefault(cert.subject.public_bytes(), []).append(cert)
                self.ders.add(der)
        return self._by_subject


_roots: weakref.WeakKeyDictionary[ssl.SSLContext, _Roots] = weakref.WeakKeyDictionary()
_no_context = _Roots(None)


def _roots_for(context: ssl.SSLContext | None) -> _Roots:
    if context is None:
        return _no_context
    roots = _roots.get(context)
    if roots is None:
        roots = _roots[context] = _Roots(context)
    return roots


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except Exception:  # InvalidSignature, name mismatch, unsupported key type
        return False
    return True


def _valid_now(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _already_in_chain(candidate: x509.Certificate, chain: list[x509.Certificate]) -> bool:
    """Go's alreadyInChain: same subject and public key (a renewed root counts as the same)."""
    subject = candidate.subject.public_bytes()
    key = candidate.public_key()
    return any(c.subject.public_bytes() == subject and c.public_key() == key for c in chain)


def go_verified_chains(presented: list[x509.Certificate], roots: _Roots) -> list[list[x509.Certificate]]:
    """Every chain from the leaf through presented intermediates to a trusted root, as Go builds them."""
    if not presented:
        return []
    leaf = presented[0]
    by_subject = roots.by_subject
    if leaf.public_bytes(Encoding.DER) in roots.ders:
        return [[leaf]]
    now = datetime.datetime.now(datetime.UTC)
    intermediates: dict[bytes, list[x509.Certificate]] = {}
    for cert in presented[1:]:
        intermediates.setdefault(cert.subject.public_bytes(), []).append(cert)
    chains: list[list[x509.Certificate]] = []

    def extend(chain: list[x509.Certificate]) -> None:
        if len(chain) > _MAX_DEPTH:
            return
        issuer = chain[-1].issuer.public_bytes()
        for candidate in by_subject.get(issuer, []):
            if len(chains) >= _MAX_CHAINS:
                return
            if not _already_in_chain(candidate, chain) and _valid_now(candidate, now) and _issued_by(
                    chain[-1], candidate):
                chains.append([*chain, candidate])
        for candidate in intermediates.get(issuer, []):
            if len(chains) >= _MAX_CHAINS:
                return
            if not _already_in_chain(candidate, chain) and _valid_now(candidate, now) and _issued_by(
                    chain[-1], candidate):
                extend([*chain, candidate])

    extend([leaf])
    return chains


# --- the metrics -----------------------------------------------------------------------------------


class _Summary:
    """Everything the TLS block reports for one presented chain (cached: parsing and chain building
    cost far more than the probe itself)."""

    __slots__ = ("earliest", "fingerprint", "issuer", "last_chain", "sans", "serial", "subject")

    def __init__(self, presented: list[x509.Certificate], last_chain: float) -> None:
        leaf = presented[0]
        self.earliest = min(_not_after(c) for c in presented)
        self.last_chain = last_chain
        self.fingerprint = hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
        self.subject = go_name_string(leaf.subject)
        self.issuer = go_name_string(leaf.issuer)
        try:
            sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            self.sans = ",".join(sans.get_values_for_type(x509.DNSName))
        except (x509.ExtensionNotFound, ValueError):
            self.sans = ""
        serial = abs(leaf.serial_number)
        # Go formats big.Int.Bytes() with %x: whole bytes, so a leading zero nibble stays.
        self.serial = serial.to_bytes((serial.bit_length() + 7) // 8, "big").hex()


_MAX_SUMMARIES = 1024


def _summary(ssl_object: Any, verified: bool) -> _Summary | None:
    presented_der = _chain_der(ssl_object, verified=False)
    if not presented_der:
        der = ssl_object.getpeercert(binary_form=True)
        presented_der = [der] if der else []
    if not presented_der:
        return None
    roots = _roots_for(getattr(ssl_object, "context", None))
    key = (hashlib.sha256(b"".join(presented_der)).digest(), verified)
    cached = roots.summaries.get(key)
    if cached is not None:
        return cached
    presented = _load(presented_der)
    last_chain = GO_ZERO_TIME
    if verified:
        chains = go_verified_chains(presented, roots)
        if not chains:  # roots we cannot list (a system CA directory): OpenSSL's own chain
            openssl_chain = _load(_chain_der(ssl_object, verified=True))
            chains = [openssl_chain] if openssl_chain else []
        if chains:
            last_chain = max(min(_not_after(c) for c in chain) for chain in chains)
    summary = _Summary(presented, last_chain)
    if len(roots.summaries) >= _MAX_SUMMARIES:
        roots.summaries.clear()
    roots.summaries[key] = summary
    return summary


def register_tls_metrics(metrics: ProbeMetrics, ssl_object: Any, *, verified: bool, last_chain: bool = True,
                         cipher: bool = False) -> None:
    """Register and set the TLS block for a finished handshake. `verified` is False when
    insecure_skip_verify was set (no verified chains, as in Go)."""
    summary = _summary(ssl_object, verified)
    if summary is None:
        return
    metrics.gauge("probe_ssl_earliest_cert_expiry", "Returns last SSL chain expiry in unixtime").set(summary.earliest)
    if last_chain:
        metrics.gauge("probe_ssl_last_chain_expiry_timestamp_seconds",
                      "Returns last SSL chain expiry in timestamp").set(summary.last_chain)
    metrics.gauge_vec("probe_ssl_last_chain_info", "Contains SSL leaf certificate information",
                      ["fingerprint_sha256", "subject", "issuer", "subjectalternative", "serialnumber"]).labels(
        summary.fingerprint, summary.subject, summary.issuer, summary.sans, summary.serial).set(1)
    version = _TLS_VERSION_NAMES.get(ssl_object.version() or "", "unknown")
    metrics.gauge_vec("probe_tls_version_info", "Returns the TLS version used or NaN when unknown",
                      ["version"]).labels(version).set(1)
    if cipher:
        metrics.gauge_vec("probe_tls_cipher_info", "Returns the TLS cipher negotiated during handshake",
                          ["cipher"]).labels(iana_cipher_name((ssl_object.cipher() or ("",))[0])).set(1)


def iana_cipher_name(openssl_name: str) -> str:
    """Go's tls.CipherSuiteName for a suite OpenSSL names its own way (TLS 1.3 names are the same)."""
    return _IANA_CIPHERS.get(openssl_name, openssl_name)

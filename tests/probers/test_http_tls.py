"""The TLS block of the HTTP prober: values as blackbox's prober/tls.go computes them."""

from __future__ import annotations

import datetime
import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probe_exporter.probers.net.tls_info import GO_ZERO_TIME, go_name_string, iana_cipher_name
from tests.support.http_probe import probe
from tests.support.http_server import LocalServer, Resp, TLSMaterial

# Every case runs on both exchange paths (the lean HTTP/1.1 one and httpcore).
pytestmark = pytest.mark.usefixtures("http_path")

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def make_cert(subject: x509.Name, key: ec.EllipticCurvePrivateKey, *, issuer: x509.Name | None = None,
              issuer_key: ec.EllipticCurvePrivateKey | None = None, days: float = 30, ca: bool = False,
              sans: list[x509.GeneralName] | None = None, serial: int = 0x0BFFBC11) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(NOW - datetime.timedelta(hours=1))
               .not_valid_after(NOW + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@pytest.fixture()
def tls_server_factory(tmp_path: Path) -> Iterator[object]:
    servers: list[LocalServer] = []

    def start(chain: list[x509.Certificate], key: ec.EllipticCurvePrivateKey,
              max_version: ssl.TLSVersion | None = None) -> LocalServer:
        cert_file, key_file = tmp_path / f"chain{len(servers)}.pem", tmp_path / f"key{len(servers)}.pem"
        cert_file.write_bytes(_pem(*chain))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        ctx.set_alpn_protocols(["http/1.1"])
        if max_version is not None:
            ctx.maximum_version = max_version
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE  # follow the client's order, as nginx does by default
        server = LocalServer(ctx)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_go_name_string_reference_example() -> None:
    # openssl: /C=US/ST=CA/L=SF/O=Acme, Inc./OU=Ops/CN=a.example/emailAddress=x@y.z/serialNumber=42/postalCode=94000
    name = _name((NameOID.COUNTRY_NAME, "US"), (NameOID.STATE_OR_PROVINCE_NAME, "CA"), (NameOID.LOCALITY_NAME, "SF"),
                 (NameOID.ORGANIZATION_NAME, "Acme, Inc."), (NameOID.ORGANIZATIONAL_UNIT_NAME, "Ops"),
                 (NameOID.COMMON_NAME, "a.example"), (NameOID.EMAIL_ADDRESS, "x@y.z"),
                 (NameOID.SERIAL_NUMBER, "42"), (NameOID.POSTAL_CODE, "94000"))
    assert go_name_string(name) == ("SERIALNUMBER=42,CN=a.example,OU=Ops,O=Acme\\, Inc.,POSTALCODE=94000,L=SF,ST=CA,"
                                    "C=US,1.2.840.113549.1.9.1=#0c057840792e7a")


@pytest.mark.parametrize(("attributes", "expected"), [
    ([(NameOID.COMMON_NAME, "plain")], "CN=plain"),
    ([(NameOID.ORGANIZATIONAL_UNIT_NAME, "a"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "b")], "OU=a+OU=b"),
    ([(NameOID.COMMON_NAME, " #lead+trail; ")], "CN=\\ #lead\\+trail\\;\\ "),  # '#' only first
        ([(NameOID.COMMON_NAME, "#x")], "CN=\\#x"),
    ([(NameOID.COMMON_NAME, "first"), (NameOID.COMMON_NAME, "last")], "CN=last"),
    ([(NameOID.DOMAIN_COMPONENT, "example")], "0.9.2342.19200300.100.1.25=#13076578616d706c65"),
    ([(NameOID.COMMON_NAME, "x"), (NameOID.STREET_ADDRESS, "1 Main St")], "CN=x,STREET=1 Main St"),
])
def test_go_name_string_rules(attributes: list[tuple[x509.ObjectIdentifier, str]], expected: str) -> None:
    assert go_name_string(_name(*attributes)) == expected


def test_iana_cipher_names() -> None:
    assert iana_cipher_name("ECDHE-RSA-AES128-GCM-SHA256") == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert iana_cipher_name("ECDHE-ECDSA-CHACHA20-POLY1305") == "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
    assert iana_cipher_name("TLS_AES_128_GCM_SHA256") == "TLS_AES_128_GCM_SHA256"


async def test_tls_block_values(tls_server_factory: object, tmp_path: Path) -> None:
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name((NameOID.COUNTRY_NAME, "DE"), (NameOID.ORGANIZATION_NAME, "Probe, Test"),
                    (NameOID.COMMON_NAME, "Probe Root"))
    ca = make_cert(ca_name, ca_key, days=40, ca=True)
    leaf = make_cert(_name((NameOID.ORGANIZATION_NAME, "Acme"), (NameOID.COMMON_NAME, "localhost")), leaf_key,
                     issuer=ca_name, issuer_key=ca_key, days=10, serial=0x0BFFBC11,
                     sans=[x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
                           x509.DNSName("alt.localhost")])
    server = tls_server_factory([leaf], leaf_key, ssl.TLSVersion.TLSv1_2)  # type: ignore[operator]
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(_pem(ca))
    url = server.route(lambda req: Resp(body=b"ok"))
    result = await probe(url, {"tls_config": {"ca_file": str(ca_file)}})
    assert result.success, result.log
    leaf_expiry = float(int(leaf.not_valid_after_utc.timestamp()))
    assert result.value("probe_ssl_earliest_cert_expiry") == leaf_expiry
    assert result.value("probe_ssl_last_chain_expiry_timestamp_seconds") == leaf_expiry
    assert result.only_labels("probe_ssl_last_chain_info") == {
        "fingerprint_sha256": hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        "subject": "CN=localhost,O=Acme",
        "issuer": "CN=Probe Root,O=Probe\\, Test,C=DE",
        "subjectalternative": "localhost,alt.localhost",  # IP SANs are dropped
        "serialnumber": "0bffbc11",
    }
    assert result.only_labels("probe_tls_version_info") == {"version": "TLS 1.2"}
    # Go's preference order: AES-128-GCM first (the server follows the client's order)
    assert result.only_labels("probe_tls_cipher_info") == {"cipher": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}


async def test_insecure_skip_verify_reports_go_zero_time(https_server: LocalServer) -> None:
    url = https_server.route(lambda req: Resp())
    result = await probe(url, {"tls_config": {"insecure_skip_verify": True}})
    assert result.value("probe_ssl_last_chain_expiry_timestamp_seconds") == GO_ZERO_TIME == -62135596800
    assert result.value("probe_ssl_earliest_cert_expiry") > 0
    assert result.only_labels("probe_tls_version_info") == {"version": "TLS 1.3"}
    assert result.only_labels("probe_tls_cipher_info")["cipher"] in (
        "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


async def test_verified_chain_vs_earliest_expiry_with_two_chains(tls_server_factory: object, tmp_path: Path) -> None:
    """Two roots with one name and key (an old one, sent by the server, and a renewed one): Go builds a
    chain through each; the last chain expiry is the better chain's earliest, the earliest expiry counts
    every presented certificate."""
    root_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = _name((NameOID.COMMON_NAME, "Renewed Root"))
    root = make_cert(root_name, root_key, days=3, ca=True, serial=1)
    older_root = make_cert(root_name, root_key, days=1, ca=True, serial=2)
    server_cert = make_cert(_name((NameOID.COMMON_NAME, "localhost")), server_key, issuer=root_name,
                            issuer_key=root_key, days=2, sans=[x509.DNSName("localhost")], serial=3)
    server = tls_server_factory([server_cert, older_root], server_key)  # type: ignore[operator]
    ca_file = tmp_path / "roots.pem"
    ca_file.write_bytes(_pem(root, older_root))
    url = server.route(lambda req: Resp()).replace("127.0.0.1", "localhost")
    result = await probe(url, {"preferred_ip_protocol": "ip4", "tls_config": {"ca_file": str(ca_file)}})
    assert result.success, result.log
    assert result.value("probe_ssl_earliest_cert_expiry") == int(older_root.not_valid_after_utc.timestamp())
    assert result.value("probe_ssl_last_chain_expiry_timestamp_seconds") == int(
        server_cert.not_valid_after_utc.timestamp())


async def test_earliest_expiry_includes_intermediates(tls_server_factory: object, tmp_path: Path) -> None:
    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root_name, inter_name = _name((NameOID.COMMON_NAME, "Root")), _name((NameOID.COMMON_NAME, "Intermediate"))
    root = make_cert(root_name, root_key, days=100, ca=True, serial=10)
    inter = make_cert(inter_name, inter_key, issuer=root_name, issuer_key=root_key, days=5, ca=True, serial=11)
    leaf = make_cert(_name((NameOID.COMMON_NAME, "localhost")), leaf_key, issuer=inter_name, issuer_key=inter_key,
                     days=20, sans=[x509.DNSName("localhost")], serial=12)
    server = tls_server_factory([leaf, inter], leaf_key)  # type: ignore[operator]
    ca_file = tmp_path / "root.pem"
    ca_file.write_bytes(_pem(root))
    url = server.route(lambda req: Resp()).replace("127.0.0.1", "localhost")
    result = await probe(url, {"preferred_ip_protocol": "ip4", "tls_config": {"ca_file": str(ca_file)}})
    assert result.success, result.log
    inter_expiry = int(inter.not_valid_after_utc.timestamp())
    assert result.value("probe_ssl_earliest_cert_expiry") == inter_expiry
    assert result.value("probe_ssl_last_chain_expiry_timestamp_seconds") == inter_expiry
    assert result.only_labels("probe_ssl_last_chain_info")["issuer"] == "CN=Intermediate"


async def test_tls_min_version_refuses_older_server(tls_server_factory: object, tls_material: TLSMaterial) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = make_cert(_name((NameOID.COMMON_NAME, "x")), key)
    server = tls_server_factory([cert], key, ssl.TLSVersion.TLSv1_2)  # type: ignore[operator]
    url = server.route(lambda req: Resp())
    result = await probe(url, {"tls_config": {"insecure_skip_verify": True, "min_version": "TLS13"}})
    assert not result.success
    assert "probe_tls_version_info" not in result.families


async def test_client_certificate(tls_material: TLSMaterial, tmp_path: Path) -> None:
    """tls_config cert_file/key_file are presented to a server that requires a client certificate."""
    client_cert = tls_material.ca.issue_cert("probe-client")
    cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
    client_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    client_cert.private_key_pem.write_to_path(str(key_file))
    ctx = tls_material.server_context(["http/1.1"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    tls_material.ca.configure_trust(ctx)
    server = LocalServer(ctx)
    try:
        url = server.route(lambda req: Resp())
        tls = {"ca_file": str(tls_material.ca_file)}
        assert not (await probe(url, {"tls_config": tls})).success
        result = await probe(url, {"tls_config": {**tls, "cert_file": str(cert_file), "key_file": str(key_file)}})
        assert result.success, result.log
    finally:
        server.close()


async def test_unreadable_ca_file_fails_before_connecting(https_server: LocalServer, tmp_path: Path) -> None:
    url = https_server.route(lambda req: Resp())
    result = await probe(url, {"tls_config": {"ca_file": str(tmp_path / "missing.pem")}})
    assert not result.success
    assert "Error generating HTTP client" in result.log
    assert https_server.seen(url) == []


async def test_ssl_context_is_built_once_per_module(https_server: LocalServer) -> None:
    from probe_exporter.probers.http.client import ModuleClient
    from probe_exporter.probers.http.probe import HTTP_CLIENT
    from tests.support.http_probe import http_module

    module = http_module({"tls_config": {"insecure_skip_verify": True}})
    url = https_server.route(lambda req: Resp())
    assert (await probe(url, module=module)).success
    client = module.cached(HTTP_CLIENT, lambda: None)
    assert isinstance(client, ModuleClient)
    context = client.ssl_context
    assert (await probe(url, module=module)).success
    assert module.cached(HTTP_CLIENT, lambda: None) is client
    assert client.ssl_context is context


async def test_unreadable_ca_file_fails_plain_http_too(http_server: LocalServer, tmp_path: Path) -> None:
    url = http_server.route(lambda req: Resp())
    result = await probe(url, {"tls_config": {"ca_file": str(tmp_path / "missing.pem")}})
    assert not result.success
    assert http_server.seen(url) == []
    assert result.labels("probe_http_duration_seconds", "phase") == {"resolve"}

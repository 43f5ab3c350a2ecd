"""`--web.config.file` (exporter-toolkit format): basic auth, TLS, client certificates, headers and
rate limits, over the real uvicorn server and real TLS clients (Python's ssl via httpx, and curl)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
import trustme

from probe_exporter.config import ConfigError
from probe_exporter.config.web import load_web_config
from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web import security
from probe_exporter.web.app import create_app
from probe_exporter.web.security import BasicAuthChecker
from tests.support.paths import REPO
from tests.web.conftest import running_server

PASSWORD = "correct horse battery staple"
# Cost 4 keeps the suite fast; the format is what htpasswd -B writes.
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
ALL_ENDPOINTS = [("GET", "/"), ("GET", "/metrics"), ("GET", "/config"), ("GET", "/-/healthy"),
                 ("GET", "/-/ready"), ("GET", "/logs?id=0"), ("POST", "/-/reload"),
                 ("GET", "/probe?module=http_2xx&target=http://127.0.0.1:9/")]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


def _serve(config_file: Path, web_config: Path) -> Iterator[str]:
    exporter = Exporter(Settings(config_files=[str(config_file)], web_config_file=str(web_config)))
    app = create_app(exporter)
    with running_server(app) as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture()
def auth_server(config_file: Path, tmp_path: Path) -> Iterator[str]:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alice: '{HASH}'\n"
                   "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
                   "    Content-Security-Policy: \"default-src 'self'\"\n")
    yield from _serve(config_file, web)


def test_every_endpoint_needs_credentials(auth_server: str) -> None:
    with httpx.Client(base_url=f"http://{auth_server}") as client:
        for method, path in ALL_ENDPOINTS:
            for auth in (None, ("alice", "wrong"), ("mallory", PASSWORD), ("", "")):
                response = client.request(method, path, auth=auth)
                assert response.status_code == 401, (method, path, auth)
                assert response.text == "Unauthorized\n"
                assert response.headers["www-authenticate"] == "Basic"
                assert response.headers["x-frame-options"] == "deny"  # headers apply to refusals too
            response = client.request(method, path, auth=("alice", PASSWORD))
            assert response.status_code in (200, 404), (method, path, response.text)
            assert response.headers["x-frame-options"] == "deny"
            assert response.headers["content-security-policy"] == "default-src 'self'"
        bad_header = client.get("/metrics", headers={"Authorization": "Basic !!notbase64"})
        assert bad_header.status_code == 401


def test_successful_checks_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = security._bcrypt_matches

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(security, "_bcrypt_matches", counting)
    users = load_users({"alice": HASH})
    checker = BasicAuthChecker()

    async def run() -> list[bool]:
        return [await checker.check(users, "alice", PASSWORD), await checker.check(users, "alice", PASSWORD),
                await checker.check(users, "alice", "nope"), await checker.check(users, "bob", PASSWORD)]

    import asyncio

    assert asyncio.run(run()) == [True, True, False, False]
    assert len(calls) == 3  # the second good check came from the cache; failures are never cached


def load_users(users: dict[str, str]) -> dict[str, security.Secret]:
    return security.WebConfig.model_validate({"basic_auth_users": users}).basic_auth_users


@pytest.fixture()
def tls_server(config_file: Path, tmp_path: Path, server_cert: tuple[Path, Path]) -> Iterator[str]:
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {server_cert[0]}\n  key_file: {server_cert[1]}\n"
                   f"basic_auth_users:\n  alice: '{HASH}'\n")
    yield from _serve(config_file, web)


def test_https_with_basic_auth(tls_server: str, ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with httpx.Client(verify=context) as client:
        assert client.get(f"https://{tls_server}/-/healthy").status_code == 401
        response = client.get(f"https://{tls_server}/-/healthy", auth=("alice", PASSWORD))
        assert response.status_code == 200 and response.text == "Healthy"


def test_plain_http_to_the_tls_listener_fails_cleanly(tls_server: str, ca: trustme.CA) -> None:
    with pytest.raises(httpx.TransportError), httpx.Client(timeout=5) as client:
        client.get(f"http://{tls_server}/-/healthy")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with httpx.Client(verify=context) as client:  # and the listener still serves
        assert client.get(f"https://{tls_server}/-/healthy", auth=("alice", PASSWORD)).status_code == 200


def test_untrusted_client_refuses_the_server(tls_server: str) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"), httpx.Client() as client:
        client.get(f"https://{tls_server}/-/healthy")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_over_tls(tls_server: str, ca: trustme.CA, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    base = ["curl", "-sS", "--cacert", str(ca_file), "-o", "/dev/null", "-w", "%{http_code}"]
    url = f"https://{tls_server}/metrics"
    assert subprocess.run([*base, url], capture_output=True, text=True, timeout=20).stdout == "401"
    ok = subprocess.run([*base, "-u", f"alice:{PASSWORD}", url], capture_output=True, text=True, timeout=20)
    assert ok.stdout == "200"


def test_min_version_refuses_older_clients(config_file: Path, tmp_path: Path,
                                           server_cert: tuple[Path, Path], ca: trustme.CA) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {server_cert[0]}\n  key_file: {server_cert[1]}\n"
                   "  min_version: TLS13\n")
    for address in _serve(config_file, web):
        old = ssl.create_default_context()
        ca.configure_trust(old)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(httpx.ConnectError), httpx.Client(verify=old) as client:
            client.get(f"https://{address}/-/healthy")
        new = ssl.create_default_context()
        ca.configure_trust(new)
        with httpx.Client(verify=new) as client:
            assert client.get(f"https://{address}/-/healthy").status_code == 200


def test_client_certificates_are_required_and_verified(config_file: Path, tmp_path: Path,
                                                       server_cert: tuple[Path, Path], ca: trustme.CA) -> None:
    client_ca = trustme.CA()
    client_ca_file = tmp_path / "client-ca.pem"
    client_ca.cert_pem.write_to_path(str(client_ca_file))
    web = tmp_path / "web.yml"
    # Relative paths are relative to the web config file, as in the toolkit.
    (tmp_path / "s.crt").write_bytes(server_cert[0].read_bytes())
    (tmp_path / "s.key").write_bytes(server_cert[1].read_bytes())
    web.write_text("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
                   "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.pem\n")
    for address in _serve(config_file, web):
        without = ssl.create_default_context()
        ca.configure_trust(without)
        with pytest.raises(httpx.TransportError), httpx.Client(verify=without) as client:
            client.get(f"https://{address}/-/healthy")
        stranger = ssl.create_default_context()
        ca.configure_trust(stranger)
        trustme.CA().issue_cert("client@example.org").configure_cert(stranger)  # signed by another CA
        with pytest.raises(httpx.TransportError), httpx.Client(verify=stranger) as client:
            client.get(f"https://{address}/-/healthy")
        good = ssl.create_default_context()
        ca.configure_trust(good)
        client_ca.issue_cert("client@example.org").configure_cert(good)
        with httpx.Client(verify=good) as client:
            assert client.get(f"https://{address}/-/healthy").status_code == 200


def test_client_allowed_sans(config_file: Path, tmp_path: Path, server_cert: tuple[Path, Path],
                             ca: trustme.CA) -> None:
    client_ca = trustme.CA()
    client_ca_file = tmp_path / "client-ca.pem"
    client_ca.cert_pem.write_to_path(str(client_ca_file))
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {server_cert[0]}\n  key_file: {server_cert[1]}\n"
                   f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {client_ca_file}\n"
                   "  client_allowed_sans: [prometheus@example.org, '2001:db8::7']\n")
    for address in _serve(config_file, web):
        def client_with(*identities: str) -> httpx.Client:
            context = ssl.create_default_context()
            ca.configure_trust(context)
            client_ca.issue_cert(*identities).configure_cert(context)
            return httpx.Client(verify=context)

        with client_with("prometheus@example.org") as client:
            assert client.get(f"https://{address}/-/healthy").status_code == 200
        with client_with("other.example", "2001:db8:0::7") as client:  # an IP SAN, written differently
            assert client.get(f"https://{address}/-/healthy").status_code == 200
        with pytest.raises(httpx.TransportError), client_with("intruder@example.org") as client:
            client.get(f"https://{address}/-/healthy")


def test_rate_limit_answers_429(config_file: Path, tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("rate_limit:\n  interval: 1m\n  burst: 2\n")
    for address in _serve(config_file, web):
        codes = [httpx.get(f"http://{address}/-/healthy").status_code for _ in range(3)]
        assert codes == [200, 200, 429]


def test_changed_file_applies_without_restart_and_broken_file_fails_closed(config_file: Path,
                                                                           tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users: {}\n")
    exporter = Exporter(Settings(config_files=[str(config_file)], web_config_file=str(web)))
    app = create_app(exporter)
    app.state.web_config.CHECK_INTERVAL = 0.0
    with running_server(app) as port:
        url = f"http://127.0.0.1:{port}/-/healthy"
        assert httpx.get(url).status_code == 200
        time.sleep(0.01)
        web.write_text(f"basic_auth_users:\n  alice: '{HASH}'\n")
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, auth=("alice", PASSWORD)).status_code == 200
        web.write_text("basic_auth_users: [nonsense\n")
        broken = httpx.get(url, auth=("alice", PASSWORD))
        assert broken.status_code == 500 and broken.text == "Internal Server Error\n"


@pytest.mark.parametrize(("body", "message"), [
    ("nope: 1\n", "field nope not found"),
    ("basic_auth_users:\n  alice: plaintext-password\n", "basic_auth_users.alice: not a bcrypt hash"),
    ("http_server_config:\n  headers:\n    X-Powered-By: me\n", 'HTTP header "X-Powered-By" can not be configured'),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "invalid value for X-Frame-Options"),
    ("tls_server_config:\n  cert_file: a.crt\n", "missing one of key or key_file"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
     "client CA's have been configured without a Client Auth Policy"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n",
     "client_auth_type RequireAnyClientCert is not supported"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Whatever\n", "invalid ClientAuth"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_FOO]\n", "unknown cipher: TLS_FOO"),
    ("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n", "tls_server_config:"),
    ("rate_limit:\n  interval: 1s\n", "rate_limit.burst must be at least 1"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n",
     "client_allowed_sans requires client_auth_type to be RequireAndVerifyClientCert"),
])
def test_bad_web_configs_are_refused(tmp_path: Path, body: str, message: str) -> None:
    web = tmp_path / "web.yml"
    web.write_text(body)
    with pytest.raises(ConfigError) as caught:
        load_web_config(str(web))
    assert message in str(caught.value)
    assert "plaintext-password" not in str(caught.value)


def test_cli_checks_the_web_config(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alice: '{HASH}'\n")
    run = [sys.executable, "-m", "probe_exporter", "--config.check", "--web.config.file"]
    ok = subprocess.run([*run, str(web)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert ok.returncode == 0, ok.stderr
    web.write_text("basic_auth_users:\n  alice: hunter2\n")
    bad = subprocess.run([*run, str(web)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 1 and "error parsing web config file" in bad.stderr and "hunter2" not in bad.stderr


def test_served_by_the_cli_with_tls_auth_and_flags(config_file: Path, tmp_path: Path,
                                                   server_cert: tuple[Path, Path], ca: trustme.CA) -> None:
    import socket

    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {server_cert[0]}\n  key_file: {server_cert[1]}\n"
                   f"basic_auth_users:\n  alice: '{HASH}'\n")
    with socket.socket() as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "probe_exporter", "--config.file", str(config_file), "--web.config.file", str(web),
         "--web.listen-address", f"127.0.0.1:{port}", "--history.limit", "7", "--probes.max-concurrency", "3"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with httpx.Client(verify=context, base_url=f"https://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    response = client.get("/metrics", auth=("alice", PASSWORD))
                    break
                except httpx.TransportError:
                    assert process.poll() is None and time.monotonic() < deadline, "the exporter did not start"
                    time.sleep(0.1)
            assert response.status_code == 200 and "probe_exporter_max_concurrent_probes 3" in response.text
            assert client.get("/metrics").status_code == 401
            assert "last 7 probes" in client.get("/", auth=("alice", PASSWORD)).text
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert "TLS is enabled" in stderr and PASSWORD not in stderr and HASH not in stderr


def test_rotated_certificate_is_served_to_new_connections(config_file: Path, tmp_path: Path) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"

    def install(ca: trustme.CA) -> None:
        cert = ca.issue_cert("127.0.0.1")
        cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))

    install(old_ca)
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
    app = create_app(Exporter(Settings(config_files=[str(config_file)], web_config_file=str(web))))
    app.state.web_config.CHECK_INTERVAL = 0.0

    def client_trusting(ca: trustme.CA) -> httpx.Client:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        return httpx.Client(verify=context)

    with running_server(app) as port:
        url = f"https://127.0.0.1:{port}/-/healthy"
        with client_trusting(old_ca) as client:
            assert client.get(url).status_code == 200
        time.sleep(0.01)
        install(new_ca)
        with client_trusting(old_ca) as client:  # this request notices the change
            assert client.get(url).status_code == 200
        with client_trusting(new_ca) as client:
            assert client.get(url).status_code == 200
        with pytest.raises(httpx.ConnectError), client_trusting(old_ca) as client:
            client.get(url)

"""Hostile and broken targets: refused, unresolvable, hanging, resetting, garbage, floods.

Every one must give probe_success 0 inside the deadline, with blackbox's metric families.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.http_probe import http_module, probe
from tests.support.http_server import LocalServer, Req, Resp, Takeover, TLSMaterial

# Every case runs on both exchange paths (the lean HTTP/1.1 one and httpcore).
pytestmark = pytest.mark.usefixtures("http_path")

HTTP_FAMILIES = {
    "probe_dns_lookup_time_seconds", "probe_duration_seconds", "probe_failed_due_to_regex",
    "probe_http_content_length", "probe_http_duration_seconds", "probe_http_redirects", "probe_http_ssl",
    "probe_http_status_code", "probe_http_uncompressed_body_length", "probe_http_version", "probe_ip_addr_hash",
    "probe_ip_protocol", "probe_success", "probe_timeout_seconds",
}
TLS_FAMILIES = {"probe_ssl_earliest_cert_expiry", "probe_ssl_last_chain_expiry_timestamp_seconds",
                "probe_ssl_last_chain_info", "probe_tls_cipher_info", "probe_tls_version_info"}
ALL_PHASES = {"connect", "processing", "resolve", "tls", "transfer"}


def _hang(server: LocalServer) -> Takeover:
    return Takeover(lambda sock: server.wait_closing(10))


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _flood(sock: socket.socket, head: bytes, chunk: bytes = b"x" * 65536) -> None:
    """Send `head`, then `chunk` over and over for 10 s (or until the client goes away)."""
    sock.sendall(head)
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            sock.sendall(chunk)
    except OSError:
        pass


async def test_success_metric_families(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(body=b"ok"))
    result = await probe(url)
    assert result.success
    assert set(result.families) == HTTP_FAMILIES
    assert result.labels("probe_http_duration_seconds", "phase") == ALL_PHASES
    assert result.value("probe_ip_protocol") == 4
    assert result.value("probe_ip_addr_hash") == 3668918509


async def test_connection_refused(refused_port: int) -> None:
    result = await probe(f"http://127.0.0.1:{refused_port}/")
    assert not result.success
    assert set(result.families) == HTTP_FAMILIES
    assert result.labels("probe_http_duration_seconds", "phase") == ALL_PHASES
    for name in ("probe_http_status_code", "probe_http_content_length", "probe_http_version",
                 "probe_http_uncompressed_body_length", "probe_http_redirects", "probe_http_ssl"):
        assert result.value(name) == 0, name
    assert result.value("probe_http_duration_seconds", phase="connect") == 0
    assert "Error for HTTP request" in result.log


async def test_unresolvable_host_has_only_the_resolve_phase() -> None:
    result = await probe("http://does-not-exist.invalid/", {"preferred_ip_protocol": "ip4"})
    assert not result.success
    assert set(result.families) == HTTP_FAMILIES
    assert result.labels("probe_http_duration_seconds", "phase") == {"resolve"}
    assert result.value("probe_ip_protocol") == 0


async def test_no_fallback_to_the_other_family_without_ip_protocol_fallback(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp()).replace("127.0.0.1", "localhost")
    # localhost has only 127.0.0.1 here; ip6 without fallback finds nothing
    if _has_v6_localhost():
        pytest.skip("localhost resolves to an IPv6 address on this machine")
    result = await probe(url, {"preferred_ip_protocol": "ip6", "ip_protocol_fallback": False})
    assert not result.success
    result = await probe(url, {"preferred_ip_protocol": "ip6"})
    assert result.success
    assert result.value("probe_ip_protocol") == 4


def _has_v6_localhost() -> bool:
    try:
        return bool(socket.getaddrinfo("localhost", None, socket.AF_INET6, socket.SOCK_STREAM))
    except socket.gaierror:
        return False


@pytest.mark.parametrize("behaviour", ["hang-before-response", "hang-mid-headers", "hang-mid-body", "trickle"])
async def test_hanging_target_fails_inside_the_deadline(http_server: LocalServer, behaviour: str) -> None:
    def action(sock: socket.socket) -> None:
        if behaviour == "hang-mid-headers":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
        elif behaviour == "hang-mid-body":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        elif behaviour == "trickle":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(50):
                if http_server._closing.wait(0.1):
                    return
                try:
                    sock.sendall(b"x")
                except OSError:
                    return
        http_server.wait_closing(10)

    url = http_server.route(lambda req: Takeover(action))
    start = time.monotonic()
    result = await probe(url, timeout=0.8)
    assert not result.success
    assert time.monotonic() - start < 2
    assert "Timeout reached" in result.log
    assert {"probe_http_status_code", "probe_http_duration_seconds"} <= set(result.families)


async def test_hanging_tls_handshake(refused_port: int) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        start = time.monotonic()
        result = await probe(f"https://127.0.0.1:{port}/", timeout=0.8)  # accepted by the kernel, never answered
        assert not result.success
        assert time.monotonic() - start < 2
    finally:
        listener.close()


async def test_connection_reset(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Takeover(_reset))
    result = await probe(url)
    assert not result.success
    assert result.value("probe_http_status_code") == 0
    assert "Error for HTTP request" in result.log


@pytest.mark.parametrize("garbage", [b"this is not http\r\n\r\n", b"\x00\xff" * 100, b"HTTP/1.1 abc\r\n\r\n",
                                     b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n"])
async def test_garbage_response(http_server: LocalServer, garbage: bytes) -> None:
    def action(sock: socket.socket) -> None:
        sock.sendall(garbage)
        sock.close()

    url = http_server.route(lambda req: Takeover(action))
    result = await probe(url)
    assert not result.success
    assert result.value("probe_http_status_code") == 0


async def test_closed_before_full_body(http_server: LocalServer) -> None:
    def action(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part")
        sock.close()

    url = http_server.route(lambda req: Takeover(action))
    result = await probe(url)
    assert not result.success
    assert result.value("probe_http_status_code") == 200
    assert result.value("probe_http_content_length") == 100
    assert "Failed to read HTTP response body" in result.log


async def test_huge_body_with_size_limit(http_server: LocalServer) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n"
    url = http_server.route(lambda req: Takeover(lambda sock: _flood(sock, head)))
    start = time.monotonic()
    result = await probe(url, {"body_size_limit": "1MB"})
    assert not result.success
    assert time.monotonic() - start < 3
    assert result.value("probe_http_uncompressed_body_length") == 1 << 20


async def test_huge_body_without_limit_stops_at_the_deadline(http_server: LocalServer) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"10000\r\n" + b"y" * 65536 + b"\r\n"
    url = http_server.route(lambda req: Takeover(lambda sock: _flood(sock, head, chunk)))
    start = time.monotonic()
    result = await probe(url, {"fail_if_body_not_matches_regexp": ["never there"]}, timeout=0.8)
    assert not result.success
    assert time.monotonic() - start < 2


async def test_decompression_bomb_is_bounded(http_server: LocalServer) -> None:
    bomb = gzip.compress(b"\0" * (16 << 20), compresslevel=1)
    url = http_server.route(lambda req: Resp(headers=[("Content-Encoding", "gzip")], body=bomb))
    result = await probe(url, {"compression": "gzip", "body_size_limit": "1MB"})
    assert not result.success
    assert result.value("probe_http_uncompressed_body_length") == 1 << 20


async def test_truncated_gzip_fails(http_server: LocalServer) -> None:
    payload = gzip.compress(b"a" * 1000)[:-6]
    url = http_server.route(lambda req: Resp(headers=[("Content-Encoding", "gzip")], body=payload))
    result = await probe(url, {"compression": "gzip"})
    assert not result.success
    assert "unexpected EOF" in result.log


async def test_https_to_a_plain_http_server(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp()).replace("http://", "https://")
    # The plain server may wait for the end of a "request line" that the ClientHello never sends.
    result = await probe(url, {"tls_config": {"insecure_skip_verify": True}}, timeout=1)
    assert not result.success
    assert result.value("probe_http_ssl") == 0


async def test_plain_http_to_a_tls_server(https_server: LocalServer) -> None:
    url = https_server.route(lambda req: Resp()).replace("https://", "http://")
    result = await probe(url, timeout=2)
    assert not result.success


async def test_redirect_to_refused_port_reports_no_response(http_server: LocalServer, refused_port: int) -> None:
    url = http_server.route(lambda req: Resp(status=302, headers=[("Location", f"http://127.0.0.1:{refused_port}/")]))
    result = await probe(url)
    assert not result.success
    assert result.value("probe_http_status_code") == 0
    assert result.value("probe_http_redirects") == 1


async def test_redirect_to_unsupported_scheme(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(status=302, headers=[("Location", "ftp://example.invalid/")]))
    result = await probe(url)
    assert not result.success
    assert result.value("probe_http_status_code") == 0


async def test_redirect_without_location_is_the_final_response(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(status=302))
    result = await probe(url, {"valid_status_codes": [302]})
    assert result.success
    assert result.value("probe_http_redirects") == 0


async def test_last_modified(http_server: LocalServer) -> None:
    def handler(req: Req) -> Resp:
        value = {"/rfc1123": "Sun, 06 Nov 1994 08:49:37 GMT", "/rfc850": "Sunday, 06-Nov-94 08:49:37 GMT",
                 "/asctime": "Sun Nov  6 08:49:37 1994", "/bad": "yesterday"}[req.path]
        return Resp(headers=[("Last-Modified", value)])

    base = http_server.route(handler)
    for path in ("/rfc1123", "/rfc850", "/asctime"):
        result = await probe(base + path)
        assert result.value("probe_http_last_modified_timestamp_seconds") == 784111777, path
    result = await probe(base + "/bad")
    assert result.success
    assert "probe_http_last_modified_timestamp_seconds" not in result.families


def _ipv6_loopback_listener() -> socket.socket | None:
    try:
        return socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        return None


async def test_ipv6_target() -> None:
    listener = _ipv6_loopback_listener()
    if listener is None:
        pytest.skip("no IPv6 loopback on this machine")
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            seen.append(conn.recv(65536))
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = await probe(f"http://[::1]:{port}/v6")
    finally:
        listener.close()
    assert result.success, result.log
    assert result.value("probe_ip_protocol") == 6
    assert f"\r\nHost: [::1]:{port}\r\n".encode() in seen[0]
    assert seen[0].startswith(b"GET /v6 HTTP/1.1\r\n")


async def test_probe_endpoint_answers_200_for_a_refused_target(tmp_path: Path, refused_port: int) -> None:
    """Through the web app: a dead target is probe_success 0 in a 200 page, never a 5xx."""
    from fastapi.testclient import TestClient

    from probe_exporter.exporter import Exporter
    from probe_exporter.settings import Settings
    from probe_exporter.web.app import create_app

    config = tmp_path / "blackbox.yml"
    config.write_text("modules:\n  http_2xx:\n    prober: http\n    timeout: 2s\n")
    with TestClient(create_app(Exporter(Settings(config_files=[str(config)])))) as client:
        response = client.get("/probe", params={"module": "http_2xx", "target": f"127.0.0.1:{refused_port}"})
    assert response.status_code == 200
    assert "probe_success 0" in response.text
    assert "probe_http_status_code 0" in response.text


async def test_body_kept_for_matching_is_bounded(http_server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from probe_exporter.probers.http import body as http_body

    monkeypatch.setattr(http_body, "MAX_KEPT_BODY", 1 << 20)
    url = http_server.route(lambda req: Resp(body=b"q" * (2 << 20)))
    result = await probe(url, {"fail_if_body_matches_regexp": ["never"]})
    assert not result.success
    assert "set body_size_limit" in result.log
    assert (await probe(url)).success  # only counted, not kept: no bound


def _open_sockets() -> int:
    import os

    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


async def test_concurrent_mixed_probes_leak_no_connections(http_server: LocalServer, https_server: LocalServer,
                                                           refused_port: int) -> None:
    """50 probes at a time, healthy, TLS, refused and hanging (cut by the deadline): every one ends
    inside its deadline and no client socket stays open afterwards."""
    import asyncio
    import gc

    ok = http_server.route(lambda req: Resp(body=b"ok"))
    hang = http_server.route(lambda req: Takeover(lambda sock: http_server.wait_closing(1.2)))
    tls = https_server.route(lambda req: Resp(body=b"ok"))
    module_plain = http_module()
    module_tls = http_module({"tls_config": {"insecure_skip_verify": True}})
    await probe(ok, module=module_plain)
    await probe(tls, module=module_tls)
    gc.collect()
    baseline = _open_sockets()
    refused = f"http://127.0.0.1:{refused_port}/"
    targets = [(ok, module_plain, True, 5.0), (tls, module_tls, True, 5.0), (refused, module_plain, False, 5.0),
               (hang, module_plain, False, 0.8)] * 25
    semaphore = asyncio.Semaphore(50)

    async def one(target: str, module: object, expected: bool, timeout: float) -> None:
        async with semaphore:
            result = await probe(target, module=module, timeout=timeout)  # type: ignore[arg-type]
            assert result.success is expected, (target, result.log)
            assert result.duration < timeout + 0.5

    await asyncio.gather(*(one(*t) for t in targets))
    # The server's side of the hanging connections closes after 1.2 s; then only leaks would remain.
    for _ in range(40):
        await asyncio.sleep(0.1)
        gc.collect()
        if _open_sockets() <= baseline:
            break
    assert _open_sockets() <= baseline


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
@pytest.mark.parametrize("credentials", [
    {"authorization": {"credentials": "tok\x00en-5ecr3t"}},
    {"bearer_token": "5ecr3t\nInjected: 1"},
    {"http_headers": {"X-Api-Key": {"secrets": ["5ecr3t\r\nX-Other: 1"]}}},
], ids=["nul", "newline", "crlf"])
async def test_an_unsendable_credential_is_not_echoed_in_the_log(
        http_server: LocalServer, https_server: LocalServer, tls_material: TLSMaterial, credentials: dict[str, Any],
        http2: bool) -> None:
    # h11 and h2 reject such a header value with a message quoting it (`Illegal header value b'...'`).
    if http2:
        url = https_server.route(lambda req: Resp(body=b"ok"))
        config = {**credentials, "tls_config": {"ca_file": str(tls_material.ca_file)}}
    else:
        url = http_server.route(lambda req: Resp(body=b"ok"))
        config = credentials
    result = await probe(url, config)
    assert not result.success
    assert "Error for HTTP request" in result.log
    assert "5ecr3t" not in result.log

"""The grpc prober against a real in-process gRPC health server (grpcio aio), plaintext and TLS."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from tests.support.grpc_server import NOT_SERVING, SERVING, grpc_health_server
from tests.support.network_probe import ADDRESS_METRICS, ALWAYS, label_sets, log_text, names, probe, value
from tests.support.tcp_servers import PKI, make_pki, serve

GRPC_METRICS = {"probe_grpc_duration_seconds", "probe_grpc_ssl", "probe_grpc_status_code",
                "probe_grpc_healthcheck_response"}
TLS_METRICS = {"probe_ssl_earliest_cert_expiry", "probe_ssl_last_chain_info", "probe_tls_version_info"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def grpc_module(**block: object) -> dict[str, object]:
    return {"prober": "grpc", "grpc": {"preferred_ip_protocol": "ip4", **block}}


def serving_statuses(outcome) -> dict[str, float]:
    return {labels["serving_status"]: value(outcome, "probe_grpc_healthcheck_response", **labels)
            for labels in label_sets(outcome, "probe_grpc_healthcheck_response")}


async def test_serving() -> None:
    async with grpc_health_server() as server:
        outcome = await probe(grpc_module(), f"127.0.0.1:{server.port}")
    assert outcome.success, log_text(outcome)
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | GRPC_METRICS
    assert value(outcome, "probe_grpc_status_code") == 0
    assert value(outcome, "probe_grpc_ssl") == 0
    assert serving_statuses(outcome) == {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 0, "SERVICE_UNKNOWN": 0}
    assert {labels["phase"] for labels in label_sets(outcome, "probe_grpc_duration_seconds")} == {"resolve", "check"}


async def test_http_prefix_is_stripped() -> None:
    async with grpc_health_server() as server:
        outcome = await probe(grpc_module(), f"http://127.0.0.1:{server.port}")
    assert outcome.success, log_text(outcome)


async def test_named_services() -> None:
    async with grpc_health_server({"service1": SERVING, "service2": NOT_SERVING}) as server:
        one = await probe(grpc_module(service="service1"), f"127.0.0.1:{server.port}")
        two = await probe(grpc_module(service="service2"), f"127.0.0.1:{server.port}")
        missing = await probe(grpc_module(service="nope"), f"127.0.0.1:{server.port}")
    assert one.success, log_text(one)
    assert not two.success
    assert value(two, "probe_grpc_status_code") == 0
    assert serving_statuses(two)["NOT_SERVING"] == 1
    assert not missing.success
    assert value(missing, "probe_grpc_status_code") == 5  # NOT_FOUND
    assert set(serving_statuses(missing).values()) == {0}
    assert "code = NotFound" in log_text(missing)


async def test_metadata_is_sent() -> None:
    async with grpc_health_server() as server:
        outcome = await probe(grpc_module(metadata={"X-Team": ["sre"], "trace-bin": ["\x01\x02"]}),
                              f"127.0.0.1:{server.port}")
        assert server.servicer is not None
        seen = server.servicer.metadata[-1]
    assert outcome.success, log_text(outcome)
    assert seen["x-team"] == "sre"
    assert seen["trace-bin"] == b"\x01\x02"


async def test_invalid_metadata_fails_the_probe_cleanly() -> None:
    async with grpc_health_server() as server:
        outcome = await probe(grpc_module(metadata={"bad key": ["x"]}), f"127.0.0.1:{server.port}")
    assert not outcome.success
    assert value(outcome, "probe_grpc_status_code") == 13
    assert "internal error" not in log_text(outcome)


async def test_unimplemented_health_service() -> None:
    async with grpc_health_server(with_health=False) as server:
        outcome = await probe(grpc_module(), f"127.0.0.1:{server.port}")
    assert not outcome.success
    assert value(outcome, "probe_grpc_status_code") == 12


async def test_tls(pki: PKI) -> None:
    async with grpc_health_server(pki=pki) as server:
        outcome = await probe(grpc_module(tls=True, tls_config={"ca_file": pki.ca_file, "server_name": "localhost"}),
                              f"127.0.0.1:{server.port}")
    assert outcome.success, log_text(outcome)
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | GRPC_METRICS | TLS_METRICS
    assert value(outcome, "probe_grpc_ssl") == 1
    assert label_sets(outcome, "probe_tls_version_info") == [{"version": "TLS 1.3"}]


async def test_tls_insecure_skip_verify(pki: PKI) -> None:
    async with grpc_health_server(pki=pki) as server:
        outcome = await probe(grpc_module(tls=True, tls_config={"insecure_skip_verify": True}),
                              f"127.0.0.1:{server.port}")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_grpc_ssl") == 1


async def test_tls_unknown_ca(pki: PKI) -> None:
    async with grpc_health_server(pki=pki) as server:
        outcome = await probe(grpc_module(tls=True, tls_config={"ca_file": pki.other_ca_file}),
                              f"127.0.0.1:{server.port}")
    assert not outcome.success
    assert value(outcome, "probe_grpc_status_code") == 14
    assert not TLS_METRICS & names(outcome)
    assert value(outcome, "probe_grpc_ssl") == 0


async def test_plaintext_against_tls_server(pki: PKI) -> None:
    async with grpc_health_server(pki=pki) as server:
        outcome = await probe(grpc_module(), f"127.0.0.1:{server.port}")
    assert not outcome.success
    assert value(outcome, "probe_grpc_status_code") == 14


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = await probe(grpc_module(), f"127.0.0.1:{port}")
    assert not outcome.success
    assert value(outcome, "probe_grpc_status_code") == 14
    assert "connection refused" in log_text(outcome)


async def test_resolution_failure_has_only_resolve_phase() -> None:
    outcome = await probe(grpc_module(), "no-such-host.invalid:50051")
    assert not outcome.success
    assert label_sets(outcome, "probe_grpc_duration_seconds") == [{"phase": "resolve"}]
    assert "probe_grpc_healthcheck_response" not in names(outcome)


async def test_not_a_grpc_server() -> None:
    async def http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with serve(http1) as port:
        outcome = await probe(grpc_module(), f"127.0.0.1:{port}")
    assert not outcome.success
    assert value(outcome, "probe_grpc_status_code") == 14


async def test_deadline_bounds_the_whole_call() -> None:
    """A server that accepts and never answers: the probe ends at its deadline with DEADLINE_EXCEEDED."""
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 20)
        await asyncio.sleep(5)

    async with serve(silent) as port:
        start = time.monotonic()
        outcome = await probe(grpc_module(), f"127.0.0.1:{port}", timeout=0.3)
    assert not outcome.success
    assert time.monotonic() - start < 0.8
    assert value(outcome, "probe_grpc_status_code") == 4
    assert "DeadlineExceeded" in log_text(outcome)


async def test_endless_frames_are_cut_off_by_size_not_only_by_the_deadline() -> None:
    """A peer that answers with HTTP/2 frames h2 ignores (an unknown type), forever: the exchange is
    bounded in bytes, so the probe stops long before its deadline."""
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        writer.write(struct.pack("!IBBI", 0, 0x4, 0, 0)[1:])  # an empty SETTINGS frame
        unknown = struct.pack("!IBBI", 16384, 0xEE, 0, 0)[1:] + bytes(16384)
        for _ in range(1000):  # 16 MiB, far more than the bound
            writer.write(unknown)
            await writer.drain()

    async with serve(flood) as port:
        outcome = await probe(grpc_module(), f"127.0.0.1:{port}", timeout=10.0)
    assert not outcome.success
    assert value(outcome, "probe_grpc_status_code") == 8, log_text(outcome)
    assert "ResourceExhausted" in log_text(outcome)
    assert outcome.duration < 5.0


async def test_ipv6() -> None:
    async with grpc_health_server(host="::1") as server:
        outcome = await probe({"prober": "grpc", "grpc": {}}, f"[::1]:{server.port}")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_ip_protocol") == 6


async def test_without_grpc_block_there_is_no_fallback() -> None:
    """Not in blackbox's DefaultModule: no grpc: block means ip_protocol_fallback false, so ip6 only."""
    async with grpc_health_server() as server:
        outcome = await probe({"prober": "grpc"}, f"127.0.0.1:{server.port}")
    assert not outcome.success
    assert "Resolution with IP protocol failed" in log_text(outcome)

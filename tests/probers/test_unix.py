"""The unix prober: the query_response dialogue and TLS over a real unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from collections.abc import AsyncIterator

import pytest

from tests.support.network_probe import ALWAYS, log_text, names, probe, value
from tests.support.tcp_servers import PKI, Handler, make_pki, send_lines

QR_METRICS = {"probe_failed_due_to_regex", "probe_failed_due_to_bytes"}
TLS_METRICS = {"probe_ssl_earliest_cert_expiry", "probe_ssl_last_chain_expiry_timestamp_seconds",
               "probe_ssl_last_chain_info", "probe_tls_version_info"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextlib.asynccontextmanager
async def unix_server(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    directory = tempfile.mkdtemp()  # short path: sun_path is limited to 108 bytes
    path = os.path.join(directory, "probe.sock")

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(wrapped, path, ssl=ssl_context)
    try:
        yield path
    finally:
        server.close()
        os.unlink(path)
        os.rmdir(directory)


async def ping_pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    if (await reader.readline()).strip() == b"PING":
        await send_lines(writer, "PONG")


async def test_ping_pong() -> None:
    async with unix_server(ping_pong) as path:
        outcome = await probe({"prober": "unix", "unix": {"query_response": [{"send": "PING"}, {"expect": "PONG"}]}},
                              path)
    assert outcome.success, log_text(outcome)
    # No address selection for unix sockets.
    assert names(outcome) == ALWAYS | QR_METRICS


async def test_wrong_answer() -> None:
    async with unix_server(ping_pong) as path:
        outcome = await probe({"prober": "unix", "unix": {"query_response": [{"send": "PING"}, {"expect": "PANG"}]}},
                              path)
    assert not outcome.success
    assert value(outcome, "probe_failed_due_to_regex") == 1


async def test_missing_socket() -> None:
    outcome = await probe({"prober": "unix"}, "/nonexistent/probe.sock")
    assert not outcome.success
    assert names(outcome) == ALWAYS
    assert "no such file or directory" in log_text(outcome)


async def test_tls(pki: PKI) -> None:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send_lines(writer, "HELLO")

    async with unix_server(banner, pki.server_context()) as path:
        mod = {"prober": "unix", "unix": {"tls": True, "query_response": [{"expect": "^HELLO$"}],
                                          "tls_config": {"ca_file": pki.ca_file, "server_name": "localhost"}}}
        ok = await probe(mod, path)
        no_name = await probe({"prober": "unix", "unix": {"tls": True, "tls_config": {"ca_file": pki.ca_file}}},
                              path)
    assert ok.success, log_text(ok)
    assert TLS_METRICS <= names(ok)
    assert not no_name.success  # nothing to verify the certificate against, as upstream

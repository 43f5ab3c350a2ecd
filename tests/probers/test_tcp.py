"""The tcp prober against real servers on loopback: dial, TLS, STARTTLS, query_response, failure paths."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path

import psycopg
import pytest

from probe_exporter.config import load_config
from probe_exporter.probers.net.tls_info import GO_ZERO_TIME
from probe_exporter.probers.query_response import go_expand
from tests.support.network_probe import (
    ADDRESS_METRICS,
    ALWAYS,
    LOOPBACK_V4_HASH,
    label_sets,
    log_text,
    names,
    probe,
    value,
)
from tests.support.tcp_servers import (
    PKI,
    Handler,
    irc_server,
    make_pki,
    pg_ssl_server,
    send_lines,
    serve,
    ssh_banner,
    starttls_server,
)

TLS_METRICS = {"probe_ssl_earliest_cert_expiry", "probe_ssl_last_chain_expiry_timestamp_seconds",
               "probe_ssl_last_chain_info", "probe_tls_version_info"}
QR_METRICS = {"probe_failed_due_to_regex", "probe_failed_due_to_bytes"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tcp(**block: object) -> dict[str, object]:
    return {"prober": "tcp", "tcp": {"preferred_ip_protocol": "ip4", **block}}


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Go Regexp.Expand ------------------------------------------------------------------------------

@pytest.mark.parametrize(("template", "expected"), [
    (b"PONG ${1}", b"PONG abc"),
    (b"PONG $1", b"PONG abc"),
    (b"$1x", b""),                    # group "1x" does not exist
    (b"${1}x", b"abcx"),
    (b"$$1", b"$1"),                  # $$ is a literal $
    (b"${name}-$name", b"def-def"),
    (b"${2}", b""),                   # group 2 did not take part in the match
    (b"${9}", b""),                   # no such group
    (b"$01", b""),                    # leading zero: a (missing) named group
    (b"a ${1 b", b"a ${1 b"),         # missing brace: the $ stays literal
    (b"cost: $ 5", b"cost: $ 5"),
    (b"\\1", b"\\1"),                 # Python's syntax means nothing here
])
def test_go_expand(template: bytes, expected: bytes) -> None:
    import re2

    pattern = re2.compile(r"PING :(\w+)(?: (x))? (?P<name>\w+)")
    line = b"PING :abc def"
    match = pattern.search(line)
    spans = [match.span(i) for i in range(pattern.groups + 1)]
    assert go_expand(template, line, spans, dict(pattern.groupindex)) == expected


# --- dial ------------------------------------------------------------------------------------------

async def test_connect_ok_metric_set() -> None:
    async with serve(silent) as port:
        outcome = await probe(tcp(), f"127.0.0.1:{port}")
    assert outcome.success, log_text(outcome)
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | QR_METRICS
    assert value(outcome, "probe_ip_protocol") == 4
    assert value(outcome, "probe_ip_addr_hash") == LOOPBACK_V4_HASH
    assert value(outcome, "probe_failed_due_to_regex") == 0


async def test_connect_ipv6_loopback() -> None:
    async with serve(silent, host="::1") as port:
        outcome = await probe({"prober": "tcp"}, f"[::1]:{port}")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_ip_protocol") == 6


async def test_hostname_target_prefers_ip6_then_falls_back() -> None:
    """`localhost` has ::1 and 127.0.0.1; the default ip6 preference picks ::1, ip4 picks 127.0.0.1."""
    async with serve(silent, host="127.0.0.1") as port:
        v4 = await probe(tcp(), f"localhost:{port}")
        v6 = await probe({"prober": "tcp"}, f"localhost:{port}")
        strict_v6 = await probe({"prober": "tcp", "tcp": {"ip_protocol_fallback": False}}, f"localhost:{port}")
    assert v4.success and value(v4, "probe_ip_protocol") == 4
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", None)}
    if "::1" in addresses:
        assert value(v6, "probe_ip_protocol") == 6
        assert not v6.success  # nothing listens on ::1
        assert value(strict_v6, "probe_ip_protocol") == 6
    else:
        assert value(v6, "probe_ip_protocol") == 4  # fell back to the other family


async def test_connection_refused() -> None:
    outcome = await probe(tcp(), f"127.0.0.1:{free_port()}")
    assert not outcome.success
    # Master registers the regex/bytes gauges only after a successful dial.
    assert names(outcome) == ALWAYS | ADDRESS_METRICS
    assert "connection refused" in log_text(outcome)


async def test_target_without_port_is_a_failure_not_a_crash() -> None:
    outcome = await probe(tcp(), "127.0.0.1")
    assert not outcome.success
    assert names(outcome) == ALWAYS
    assert "missing port in address" in outcome.reason


async def test_unresolvable_host() -> None:
    outcome = await probe(tcp(), "no-such-host.invalid:22")
    assert not outcome.success
    assert names(outcome) == ALWAYS | ADDRESS_METRICS
    assert value(outcome, "probe_ip_protocol") == 0
    assert "Error resolving address" in log_text(outcome)


async def test_source_ip_address() -> None:
    peers: list[str] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[0])

    async with serve(record, host="0.0.0.0") as port:
        outcome = await probe(tcp(source_ip_address="127.0.0.2"), f"127.0.0.1:{port}")
    assert outcome.success, log_text(outcome)
    assert peers == ["127.0.0.2"]


async def test_dial_that_never_completes_fails_inside_deadline() -> None:
    """A listener whose backlog is full drops SYNs: the dial hangs until the probe deadline."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        start = time.monotonic()
        outcome = await probe(tcp(), f"127.0.0.1:{port}", timeout=0.5)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert not outcome.success
    assert time.monotonic() - start < 1.0
    assert "Error dialing TCP" in log_text(outcome)
    assert names(outcome) == ALWAYS | ADDRESS_METRICS


# --- query_response --------------------------------------------------------------------------------

async def test_ssh_banner_module() -> None:
    async with serve(ssh_banner) as port:
        outcome = await probe(tcp(query_response=[{"expect": "^SSH-2.0-"},
                                                  {"send": "SSH-2.0-blackbox-ssh-check"}]), f"127.0.0.1:{port}")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_failed_due_to_regex") == 0


async def test_wrong_banner_fails_due_to_regex() -> None:
    async def http_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send_lines(writer, "HTTP/1.1 400 Bad Request", "")

    async with serve(http_server) as port:
        outcome = await probe(tcp(query_response=[{"expect": "^SSH-2.0-"}]), f"127.0.0.1:{port}")
    assert not outcome.success
    assert value(outcome, "probe_failed_due_to_regex") == 1
    assert "Regexp did not match" in log_text(outcome)


async def test_expect_info_labels_from_groups() -> None:
    async with serve(ssh_banner) as port:
        outcome = await probe(tcp(query_response=[{
            "expect": "^SSH-2.0-([^ -]+)(?: (.*))?$",
            "labels": [{"name": "ssh_version", "value": "${1}"}, {"name": "ssh_comments", "value": "${2}"}],
        }]), f"127.0.0.1:{port}")
    assert outcome.success, log_text(outcome)
    # `\r` was stripped before matching, so `$` anchored and the comment has no trailing CR.
    assert label_sets(outcome, "probe_expect_info") == [
        {"ssh_version": "OpenSSH_9.2p1", "ssh_comments": "Debian-2+deb12u3"}]


async def test_expect_info_with_invalid_label_name_is_skipped_not_fatal() -> None:
    async with serve(ssh_banner) as port:
        outcome = await probe(tcp(query_response=[{"expect": "^SSH-2.0-(.*)$",
                                                   "labels": [{"name": "ssh-version", "value": "${1}"}]}]),
                              f"127.0.0.1:{port}")
    assert outcome.success, log_text(outcome)
    assert "probe_expect_info" not in names(outcome)
    assert "probe_expect_info not exported" in log_text(outcome)


async def test_irc_dialogue_with_pong_expansion() -> None:
    async with serve(irc_server) as port:
        outcome = await probe(tcp(query_response=[
            {"send": "NICK prober"}, {"send": "USER prober prober prober :prober"},
            {"expect": "PING :([^ ]+)", "send": "PONG ${1}"}, {"expect": "^:[^ ]+ 001"}]), f"127.0.0.1:{port}")
    assert outcome.success, log_text(outcome)


async def test_irc_dialogue_python_backreference_is_not_expanded() -> None:
    async with serve(irc_server) as port:
        outcome = await probe(tcp(query_response=[
            {"send": "NICK prober"}, {"send": "USER prober prober prober :prober"},
            {"expect": "PING :([^ ]+)", "send": "PONG \\1"}, {"expect": "^:[^ ]+ 001"}]), f"127.0.0.1:{port}")
    assert not outcome.success
    assert value(outcome, "probe_failed_due_to_regex") == 1


async def test_expect_matches_one_line_only() -> None:
    async def two_lines(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send_lines(writer, "hello", "world")

    async with serve(two_lines) as port:
        across = await probe(tcp(query_response=[{"expect": "hello\\s+world"}]), f"127.0.0.1:{port}")
        line = await probe(tcp(query_response=[{"expect": "^world$"}]), f"127.0.0.1:{port}")
    assert not across.success
    assert line.success, log_text(line)


async def test_final_line_without_newline_is_matched() -> None:
    async def no_newline(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"READY")
        await writer.drain()

    async with serve(no_newline) as port:
        outcome = await probe(tcp(query_response=[{"expect": "^READY$"}]), f"127.0.0.1:{port}")
    assert outcome.success, log_text(outcome)


async def test_line_longer_than_64k_fails() -> None:
    async def long_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x" * 70000 + b"\n")
        await writer.drain()
        await reader.read(1)

    async with serve(long_line) as port:
        outcome = await probe(tcp(query_response=[{"expect": "never"}]), f"127.0.0.1:{port}")
    assert not outcome.success
    assert value(outcome, "probe_failed_due_to_regex") == 0
    assert "token too long" in log_text(outcome)


async def test_endless_lines_are_cut_off_by_size_not_only_by_the_deadline() -> None:
    async def chatter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = b"x" * 999 + b"\n"
        while True:  # until the prober hangs up
            writer.write(line * 64)
            await writer.drain()

    async with serve(chatter) as port:
        outcome = await probe(tcp(query_response=[{"expect": "never"}]), f"127.0.0.1:{port}", timeout=20)
    assert not outcome.success
    assert outcome.duration < 10
    assert "more than 4194304 bytes of lines" in outcome.reason
    assert log_text(outcome).count("Read line") == 100 and "Further lines read but not logged" in log_text(outcome)


async def test_silent_server_times_out_inside_deadline_with_reason() -> None:
    async with serve(silent) as port:
        start = time.monotonic()
        outcome = await probe(tcp(query_response=[{"expect": "^SSH-"}]), f"127.0.0.1:{port}", timeout=0.3)
    assert not outcome.success
    assert time.monotonic() - start < 0.8
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | QR_METRICS
    assert "waiting_for=\"a line matching '^SSH-'\"" in log_text(outcome)


async def test_reset_by_peer() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    async with serve(reset) as port:
        outcome = await probe(tcp(query_response=[{"expect": "x"}]), f"127.0.0.1:{port}")
    assert not outcome.success
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | QR_METRICS
    assert value(outcome, "probe_failed_due_to_regex") == 0
    assert "Error reading from connection: connection reset by peer" in outcome.reason


async def test_expect_bytes_ok_and_mismatch() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"N")
        await writer.drain()
        await reader.read(1)

    async with serve(answer) as port:
        ok = await probe(tcp(query_response=[{"expect_bytes": "N"}]), f"127.0.0.1:{port}")
        bad = await probe(tcp(query_response=[{"expect_bytes": "S"}]), f"127.0.0.1:{port}")
    assert ok.success, log_text(ok)
    assert value(ok, "probe_failed_due_to_bytes") == 0
    assert not bad.success
    assert value(bad, "probe_failed_due_to_bytes") == 1
    assert "Bytes did not match" in log_text(bad)


async def test_expect_bytes_eof_is_a_read_error() -> None:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return

    async with serve(close) as port:
        outcome = await probe(tcp(query_response=[{"expect_bytes": "S"}]), f"127.0.0.1:{port}")
    assert not outcome.success
    assert value(outcome, "probe_failed_due_to_bytes") == 0
    assert "EOF" in log_text(outcome)


# --- TLS -------------------------------------------------------------------------------------------

async def test_tls_metrics(pki: PKI) -> None:
    async with serve(silent, ssl_context=pki.server_context()) as port:
        outcome = await probe(tcp(tls=True, tls_config={"ca_file": pki.ca_file, "server_name": "localhost"}),
                              f"127.0.0.1:{port}")
    assert outcome.success, log_text(outcome)
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | QR_METRICS | TLS_METRICS
    leaf = pki.server_cert.cert_chain_pems[0]
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(leaf.bytes())
    assert value(outcome, "probe_ssl_earliest_cert_expiry") == cert.not_valid_after_utc.timestamp()
    assert value(outcome, "probe_ssl_last_chain_expiry_timestamp_seconds") == cert.not_valid_after_utc.timestamp()
    assert label_sets(outcome, "probe_tls_version_info") == [{"version": "TLS 1.3"}]
    (info,) = label_sets(outcome, "probe_ssl_last_chain_info")
    assert info["subjectalternative"] == "localhost"  # DNS SANs only: the IP SANs are dropped
    assert "probe_tls_cipher_info" not in names(outcome)


async def test_tls_ip_target_verifies_ip_san(pki: PKI) -> None:
    async with serve(silent, ssl_context=pki.server_context()) as port:
        outcome = await probe(tcp(tls=True, tls_config={"ca_file": pki.ca_file}), f"127.0.0.1:{port}")
    assert outcome.success, log_text(outcome)


async def test_tls_unknown_ca_fails_without_tls_metrics(pki: PKI) -> None:
    async with serve(silent, ssl_context=pki.server_context()) as port:
        outcome = await probe(tcp(tls=True, tls_config={"ca_file": pki.other_ca_file}), f"127.0.0.1:{port}")
    assert not outcome.success
    assert names(outcome) == ALWAYS | ADDRESS_METRICS
    assert "certificate verify failed" in log_text(outcome) or "unable to get" in log_text(outcome)


async def test_tls_wrong_server_name_fails(pki: PKI) -> None:
    async with serve(silent, ssl_context=pki.server_context()) as port:
        outcome = await probe(tcp(tls=True, tls_config={"ca_file": pki.ca_file, "server_name": "example.org"}),
                              f"127.0.0.1:{port}")
    assert not outcome.success
    assert "Error dialing TCP" in log_text(outcome)


async def test_tls_hostname_param_sets_server_name(pki: PKI) -> None:
    async with serve(silent, ssl_context=pki.server_context()) as port:
        mod = tcp(tls=True, tls_config={"ca_file": pki.ca_file})
        bad = await probe(mod, f"127.0.0.1:{port}", params={"hostname": "example.org"})
        good = await probe(mod, f"127.0.0.1:{port}", params={"hostname": "localhost"})
    assert not bad.success
    assert good.success, log_text(good)


async def test_tls_insecure_skip_verify_reports_go_zero_last_chain(pki: PKI) -> None:
    async with serve(silent, ssl_context=pki.server_context()) as port:
        outcome = await probe(tcp(tls=True, tls_config={"insecure_skip_verify": True}), f"127.0.0.1:{port}")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_ssl_last_chain_expiry_timestamp_seconds") == GO_ZERO_TIME


async def test_tls_against_plaintext_server_fails(pki: PKI) -> None:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send_lines(writer, "SSH-2.0-OpenSSH_9.2p1")
        await reader.read(10)

    async with serve(banner) as port:
        outcome = await probe(tcp(tls=True, tls_config={"ca_file": pki.ca_file}), f"127.0.0.1:{port}")
    assert not outcome.success
    assert names(outcome) == ALWAYS | ADDRESS_METRICS


async def test_tls_client_certificate(pki: PKI, tmp_path: Path) -> None:
    client = pki.ca.issue_cert("prober.local")
    cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert_file))
    client.private_key_pem.write_to_path(str(key_file))
    server_ctx = pki.server_context()
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    pki.ca.configure_trust(server_ctx)
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # the client cert is checked in the handshake
    async with serve(silent, ssl_context=server_ctx) as port:
        with_cert = await probe(tcp(tls=True, tls_config={"ca_file": pki.ca_file, "cert_file": str(cert_file),
                                                          "key_file": str(key_file)}), f"127.0.0.1:{port}")
        without = await probe(tcp(tls=True, tls_config={"ca_file": pki.ca_file}), f"127.0.0.1:{port}")
    assert with_cert.success, log_text(with_cert)
    assert label_sets(with_cert, "probe_tls_version_info") == [{"version": "TLS 1.2"}]
    assert not without.success


async def test_starttls_dialogue(pki: PKI) -> None:
    async with serve(starttls_server(pki.server_context())) as port:
        outcome = await probe(tcp(tls_config={"ca_file": pki.ca_file}, query_response=[
            {"expect": "^220 ([^ ]+) ESMTP (.+)$"}, {"send": "EHLO prober\r"}, {"expect": "^250-STARTTLS"},
            {"send": "STARTTLS\r"}, {"expect": "^220"}, {"starttls": True}, {"send": "EHLO prober\r"},
            {"expect": "^250-AUTH"}, {"send": "QUIT\r"}]), f"localhost:{port}")
    assert outcome.success, log_text(outcome)
    assert TLS_METRICS <= names(outcome)


async def test_starttls_bad_certificate(pki: PKI) -> None:
    async with serve(starttls_server(pki.server_context())) as port:
        outcome = await probe(tcp(tls_config={"ca_file": pki.other_ca_file}, query_response=[
            {"expect": "^220"}, {"send": "EHLO prober\r"}, {"expect": "^250-STARTTLS"},
            {"send": "STARTTLS\r"}, {"expect": "^220"}, {"starttls": True}]), f"127.0.0.1:{port}")
    assert not outcome.success
    assert not TLS_METRICS & names(outcome)
    assert "TLS Handshake (client) failed" in log_text(outcome)


# --- the stock modules, loaded from YAML -----------------------------------------------------------

STOCK_MODULES = """
modules:
  ssh_banner:
    prober: tcp
    tcp:
      query_response:
      - expect: "^SSH-2.0-"
      - send: "SSH-2.0-blackbox-ssh-check"
  irc_banner:
    prober: tcp
    tcp:
      query_response:
      - send: "NICK prober"
      - send: "USER prober prober prober :prober"
      - expect: "PING :([^ ]+)"
        send: "PONG ${1}"
      - expect: "^:[^ ]+ 001"
  pop3s_banner:
    prober: tcp
    tcp:
      query_response:
      - expect: "^+OK"
      tls: true
      tls_config:
        insecure_skip_verify: false
  postgresql:
    prober: tcp
    tcp:
      query_response:
      - send: !!binary AAAACATSFi8= # 0x00, 0x00, 0x00, 0x08, 0x04, 0xD2, 0x16, 0x2F - PostgreSQL SSLRequest
      - expect_bytes: S # 0x53 - Reply will be 'S' if SSL is enabled, and 'N' if it is not.
      - starttls: true
"""


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    path = tmp_path_factory.mktemp("stock") / "blackbox.yml"
    path.write_text(STOCK_MODULES)
    return dict(load_config([str(path)]).modules)


def test_stock_modules_load(stock: dict[str, object]) -> None:
    assert set(stock) == {"ssh_banner", "irc_banner", "pop3s_banner", "postgresql"}
    assert stock["postgresql"].tcp.query_response[0].send == bytes.fromhex("0000000804d2162f")  # type: ignore[attr-defined]


def test_debian_stock_blackbox_yml_loads() -> None:
    path = Path("/etc/prometheus/blackbox.yml")
    if not path.exists():
        pytest.skip("Debian's prometheus-blackbox-exporter is not installed")
    modules = load_config([str(path)]).modules
    assert modules["irc_banner"].tcp.query_response[2].send == b"PONG ${1}"


async def test_stock_ssh_banner(stock: dict[str, object]) -> None:
    async with serve(ssh_banner) as port:
        outcome = await probe(stock["ssh_banner"], f"127.0.0.1:{port}")  # type: ignore[arg-type]
    assert outcome.success, log_text(outcome)


async def test_stock_irc_banner(stock: dict[str, object]) -> None:
    async with serve(irc_server) as port:
        outcome = await probe(stock["irc_banner"], f"127.0.0.1:{port}")  # type: ignore[arg-type]
    assert outcome.success, log_text(outcome)


async def test_stock_pop3s_banner_behaves_as_re2(stock: dict[str, object], pki: PKI,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`^+OK` is `(^)+OK` in RE2: a real POP3 greeting `+OK ...` does NOT match (as upstream)."""
    monkeypatch.setenv("SSL_CERT_FILE", pki.ca_file)

    def pop3(greeting: str) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await send_lines(writer, greeting, "-ERR bye")

        return handler

    mod = stock["pop3s_banner"].model_copy(deep=True)  # type: ignore[attr-defined]
    async with serve(pop3("+OK POP3 ready"), host="127.0.0.1", ssl_context=pki.server_context()) as port:
        real = await probe(mod, f"localhost:{port}")
    async with serve(pop3("OK POP3 ready"), host="127.0.0.1", ssl_context=pki.server_context()) as port:
        ok = await probe(mod, f"localhost:{port}")
    assert not real.success
    assert value(real, "probe_failed_due_to_regex") == 1, log_text(real)
    assert TLS_METRICS <= names(real)
    assert ok.success, log_text(ok)


async def test_stock_postgresql_sslrequest_starttls(stock: dict[str, object], pki: PKI,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", pki.ca_file)
    mod = stock["postgresql"].model_copy(deep=True)  # type: ignore[attr-defined]
    async with serve(pg_ssl_server(pki.server_context())) as port:
        outcome = await probe(mod, f"localhost:{port}")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_failed_due_to_bytes") == 0
    assert TLS_METRICS <= names(outcome)


async def test_stock_postgresql_against_real_server(stock: dict[str, object]) -> None:
    """The local PostgreSQL: with ssl=off it answers `N`, so the probe fails on the bytes check."""
    try:
        with psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres", connect_timeout=2) as conn:
            ssl_on = conn.execute("show ssl").fetchone()[0] == "on"  # type: ignore[index]
    except psycopg.OperationalError as err:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {err}")
    outcome = await probe(stock["postgresql"], "127.0.0.1:5432")  # type: ignore[arg-type]
    if ssl_on:
        assert value(outcome, "probe_failed_due_to_bytes") == 0
    else:
        assert not outcome.success
        assert value(outcome, "probe_failed_due_to_bytes") == 1
        assert "Bytes did not match" in log_text(outcome)

"""Side by side with Debian's blackbox_exporter (0.23): tcp, dns, icmp and grpc probes.

The Go exporter runs on a loopback port with a generated blackbox.yml; the same file is loaded by
probe_exporter. For every (module, target) both probe the same real local server, and the test
compares metric family names, label sets (values included) and every value that is not a timing.

We follow upstream master (0.28+), so a few differences from 0.23 are expected; each one is listed
in VERSION_DIFFERENCES with the upstream change that caused it, and nothing else may differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.blackbox_reference import REQUIRES_BLACKBOX, assert_same_samples, blackbox_exporter, probe_both
from tests.support.dns_server import dns_server
from tests.support.grpc_server import NOT_SERVING, SERVING, grpc_health_server
from tests.support.ports import free_port
from tests.support.tcp_servers import PKI, irc_server, make_pki, send_lines, serve, ssh_banner, starttls_server

pytestmark = REQUIRES_BLACKBOX
TIMEOUT = 2.0

async def _http_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await send_lines(writer, "HTTP/1.1 400 Bad Request", "")


async def _pop3_greeting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await send_lines(writer, "+OK POP3 ready", "-ERR bye")


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)


def _config(pki: PKI) -> str:
    tls = f'tls_config: {{ca_file: "{pki.ca_file}", server_name: localhost}}'
    dns = "preferred_ip_protocol: ip4, query_name: www.example.test, query_type: A"
    dns_block = "preferred_ip_protocol: ip4\n      query_name: www.example.test\n      query_type: A"
    return f"""modules:
  tcp_connect: {{prober: tcp, timeout: 2s, tcp: {{preferred_ip_protocol: ip4}}}}
  ssh_banner:
    prober: tcp
    timeout: 2s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
      - expect: "^SSH-2.0-"
      - send: "SSH-2.0-blackbox-ssh-check"
  irc_banner:
    prober: tcp
    timeout: 2s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
      - send: "NICK prober"
      - send: "USER prober prober prober :prober"
      - expect: "PING :([^ ]+)"
        send: "PONG ${{1}}"
      - expect: "^:[^ ]+ 001"
  tcp_tls: {{prober: tcp, timeout: 2s, tcp: {{preferred_ip_protocol: ip4, tls: true, {tls}}}}}
  tcp_tls_ca_only:
    prober: tcp
    timeout: 2s
    tcp: {{preferred_ip_protocol: ip4, tls: true, tls_config: {{ca_file: "{pki.ca_file}"}}}}
  pop3s_banner:
    prober: tcp
    timeout: 2s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
      - expect: "^+OK"
      tls: true
      {tls}
  tcp_tls_bad_ca:
    prober: tcp
    timeout: 2s
    tcp: {{preferred_ip_protocol: ip4, tls: true, tls_config: {{ca_file: "{pki.other_ca_file}"}}}}
  tcp_tls_insecure:
    prober: tcp
    timeout: 2s
    tcp: {{preferred_ip_protocol: ip4, tls: true, tls_config: {{insecure_skip_verify: true}}}}
  smtp_starttls:
    prober: tcp
    timeout: 2s
    tcp:
      preferred_ip_protocol: ip4
      {tls}
      query_response:
      - expect: "^220 ([^ ]+) ESMTP (.+)$"
      - send: "EHLO prober\\r"
      - expect: "^250-STARTTLS"
      - send: "STARTTLS\\r"
      - expect: "^220"
      - starttls: true
      - send: "EHLO prober\\r"
      - expect: "^250-AUTH"
      - send: "QUIT\\r"
  dns_udp: {{prober: dns, timeout: 2s, dns: {{{dns}}}}}
  dns_dot:
    prober: dns
    timeout: 2s
    dns: {{{dns}, transport_protocol: tcp, dns_over_tls: true, {tls}}}
  dns_slow_udp:
    prober: dns
    timeout: 500ms
    dns: {{preferred_ip_protocol: ip4, query_name: slow.example.test}}
  tcp_silent:
    prober: tcp
    timeout: 500ms
    tcp:
      preferred_ip_protocol: ip4
      query_response:
      - expect: "^SSH-2.0-"
  dns_tcp: {{prober: dns, timeout: 2s, dns: {{{dns}, transport_protocol: tcp}}}}
  dns_any: {{prober: dns, timeout: 2s, dns: {{preferred_ip_protocol: ip4, query_name: www.example.test}}}}
  dns_soa: {{prober: dns, timeout: 2s, dns: {{preferred_ip_protocol: ip4, query_name: example.test, query_type: SOA}}}}
  dns_servfail:
    prober: dns
    timeout: 2s
    dns: {{preferred_ip_protocol: ip4, query_name: servfail.example.test}}
  dns_nxdomain_ok:
    prober: dns
    timeout: 2s
    dns: {{preferred_ip_protocol: ip4, query_name: nx.example.test, valid_rcodes: [NXDOMAIN]}}
  dns_validators:
    prober: dns
    timeout: 2s
    dns:
      {dns_block}
      validate_answer_rrs:
        fail_if_not_matches_regexp: ["www.example.test.\\t300\\tIN\\tA\\t192.0.2.[12]"]
        fail_if_all_match_regexp: ["192.0.2"]
      validate_authority_rrs:
        fail_if_none_matches_regexp: ["\\tNS\\t"]
      validate_additional_rrs:
        fail_if_matches_regexp: ["192.0.2.53"]
  dns_validators_ok:
    prober: dns
    timeout: 2s
    dns:
      {dns_block}
      validate_answer_rrs:
        fail_if_not_matches_regexp: ["^www.example.test.\\t300\\tIN\\tA\\t192.0.2.[12]$"]
      validate_additional_rrs:
        fail_if_not_matches_regexp: ["^ns1.example.test.\\t3600\\tIN\\tA\\t192.0.2.53$"]
  icmp4: {{prober: icmp, timeout: 2s, icmp: {{preferred_ip_protocol: ip4}}}}
  icmp6: {{prober: icmp, timeout: 2s}}
  grpc_plain: {{prober: grpc, timeout: 2s, grpc: {{preferred_ip_protocol: ip4}}}}
  grpc_service1: {{prober: grpc, timeout: 2s, grpc: {{preferred_ip_protocol: ip4, service: service1}}}}
  grpc_down: {{prober: grpc, timeout: 2s, grpc: {{preferred_ip_protocol: ip4, service: down}}}}
  grpc_unknown: {{prober: grpc, timeout: 2s, grpc: {{preferred_ip_protocol: ip4, service: nope}}}}
  grpc_tls: {{prober: grpc, timeout: 2s, grpc: {{preferred_ip_protocol: ip4, tls: true, {tls}}}}}
"""


@dataclass
class World:
    config_file: Path
    go_url: str
    ports: dict[str, int]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    directory = tmp_path_factory.mktemp("side_by_side")
    pki = make_pki(directory)
    async with contextlib.AsyncExitStack() as stack:
        ports = {
            "ssh": await stack.enter_async_context(serve(ssh_banner)),
            "http": await stack.enter_async_context(serve(_http_banner)),
            "irc": await stack.enter_async_context(serve(irc_server)),
            "tls": await stack.enter_async_context(serve(_silent, ssl_context=pki.server_context())),
            "pop3s": await stack.enter_async_context(serve(_pop3_greeting, ssl_context=pki.server_context())),
            "starttls": await stack.enter_async_context(serve(starttls_server(pki.server_context()))),
            "dns": (dns := await stack.enter_async_context(dns_server(tls_context=pki.server_context()))).port,
            "dot": dns.tls_port,
            "silent": await stack.enter_async_context(serve(_silent)),
            "grpc": (await stack.enter_async_context(grpc_health_server(
                {"": SERVING, "service1": SERVING, "down": NOT_SERVING}))).port,
            "grpc_tls": (await stack.enter_async_context(grpc_health_server(pki=pki))).port,
            "closed_tcp": free_port(),
            "closed_udp": free_port(socket.SOCK_DGRAM),
        }
        config_file = directory / "blackbox.yml"
        config_file.write_text(_config(pki))
        async with blackbox_exporter(config_file) as go_url:
            yield World(config_file=config_file, go_url=go_url, ports=ports)


# Expected differences between Debian's 0.23 and upstream master, which we follow:
# (families only 0.23 has, families only we have); the serialnumber label is dropped by probe_both.
TCP_028 = ({"probe_failed_due_to_bytes"}, "0.28 added probe_failed_due_to_bytes (expect_bytes)")
DIAL_FAIL_023 = ({"probe_failed_due_to_regex"}, "0.23 registered probe_failed_due_to_regex before dialling")
GRPC_023 = ({"probe_ssl_earliest_cert_expiry"}, "0.23 registered it for plaintext gRPC too (#1338 fixed it)")

# (module, target key or literal, go-only families, ours-only families)
CASES: list[tuple[str, str, set[str], set[str]]] = [
    ("tcp_connect", "ssh", set(), TCP_028[0]),
    ("tcp_connect", "closed_tcp", DIAL_FAIL_023[0], set()),
    ("ssh_banner", "ssh", set(), TCP_028[0]),
    ("ssh_banner", "http", set(), TCP_028[0]),
    ("irc_banner", "irc", set(), TCP_028[0]),
    ("tcp_tls", "tls", set(), TCP_028[0]),
    ("tcp_tls_ca_only", "localhost:tls", set(), TCP_028[0]),
    ("pop3s_banner", "pop3s", set(), TCP_028[0]),  # RE2 reads ^+OK as (^)+OK: `+OK POP3 ready` fails
    ("tcp_tls_bad_ca", "tls", DIAL_FAIL_023[0], set()),
    ("tcp_tls_insecure", "tls", set(), TCP_028[0]),
    ("smtp_starttls", "starttls", set(), TCP_028[0]),
    ("dns_udp", "dns", set(), set()),
    ("dns_tcp", "dns", set(), set()),
    ("dns_any", "dns", set(), set()),
    ("dns_soa", "dns", set(), set()),
    ("dns_servfail", "dns", set(), set()),
    ("dns_nxdomain_ok", "dns", set(), set()),
    ("dns_validators", "dns", set(), set()),
    ("dns_validators_ok", "dns", set(), set()),
    ("dns_udp", "closed_udp", set(), set()),
    ("dns_tcp", "closed_tcp", set(), set()),
    ("dns_dot", "dot", set(), set()),
    ("dns_slow_udp", "dns", set(), set()),  # no answer: both stop at the 500ms deadline
    ("tcp_silent", "silent", set(), TCP_028[0]),
    ("icmp4", "127.0.0.1", set(), set()),
    ("icmp6", "::1", set(), set()),
    ("grpc_plain", "grpc", GRPC_023[0], set()),
    ("grpc_service1", "grpc", GRPC_023[0], set()),
    ("grpc_down", "grpc", GRPC_023[0], set()),
    ("grpc_unknown", "grpc", GRPC_023[0], set()),
    ("grpc_plain", "closed_tcp", GRPC_023[0], set()),
    ("grpc_tls", "grpc_tls", set(), set()),
]


def _target(world: World, key: str) -> str:
    host, _, name = key.rpartition(":")
    if name in world.ports:
        return f"{host or '127.0.0.1'}:{world.ports[name]}"
    return key


@pytest.mark.parametrize(("module_name", "target_key", "go_only", "ours_only"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
async def test_same_metrics_as_blackbox_exporter(world: World, module_name: str, target_key: str, go_only: set[str],
                                                 ours_only: set[str]) -> None:
    target = _target(world, target_key)
    both = await probe_both(world.go_url, world.config_file, module_name, target, TIMEOUT)
    for name in go_only:
        assert name in both.go, f"expected 0.23-only family {name} is gone: update CASES"
        both.go.pop(name)
    for name in ours_only:
        assert name in both.ours, f"expected family {name} missing from ours"
        both.ours.pop(name)

    assert_same_samples(both)

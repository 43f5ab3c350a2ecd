"""A resolver per module (`dns_server`, `dns_timeout`): split-horizon DNS with two real DNS servers.

The test starts two DNS servers (UDP and TCP, dnspython messages) that answer the same names
differently. The "internal" view says 127.0.0.1, the "public" view says 127.0.0.2. The probed
services listen on 0.0.0.0, so the probes succeed through both views, and probe_ip_addr_hash shows
which view a module used.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from pydantic import ValidationError

from probe_exporter.config import ConfigError, Module, load_config
from probe_exporter.config.blackbox import parse_server
from probe_exporter.config.render import module_as_yaml
from probe_exporter.probers import resolver
from probe_exporter.probers.net.addr import ip_hash
from tests.support.dns_server import DNSServer, _rrset, dns_server
from tests.support.grpc_server import grpc_health_server
from tests.support.network_probe import ADDRESS_METRICS, ALWAYS, LOOPBACK_V4_HASH, log_text, names, probe, value
from tests.support.tcp_servers import serve

SITE = "site.split.test."
OTHER = "other.split.test."  # an HTTP redirect target only the module's servers know
BIG = "big.split.test."  # truncated over UDP: the answer only comes over TCP
SERVFAIL = "broken.split.test."
INTERNAL_HASH = LOOPBACK_V4_HASH
PUBLIC_HASH = ip_hash("127.0.0.2")


@dataclass
class SplitView(DNSServer):
    """One view of the split.test zone: every name has the view's address (A only)."""

    address: str = "127.0.0.1"
    servfail: bool = False
    transports: list[str] = field(default_factory=list)

    def answer(self, query: dns.message.Message, over_udp: bool, source: str) -> dns.message.Message | None:
        self.queries.append(query)
        self.transports.append("udp" if over_udp else "tcp")
        question = query.question[0]
        name = question.name.to_text().lower()
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        if self.servfail or name == SERVFAIL:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in (SITE, OTHER, BIG):
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif name == BIG and over_udp:
            response.flags |= dns.flags.TC
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(_rrset(name, "A", [self.address]))
        return response  # AAAA: NOERROR without data, as for a v4-only name

    def names_asked(self) -> list[str]:
        return [query.question[0].name.to_text() for query in self.queries]


@dataclass
class Views:
    internal: SplitView
    public: SplitView
    internal_address: str
    public_address: str


@contextlib.asynccontextmanager
async def split_views() -> AsyncIterator[Views]:
    async with (dns_server(server=SplitView(address="127.0.0.1")) as internal,
                dns_server(server=SplitView(address="127.0.0.2")) as public):
        assert isinstance(internal, SplitView) and isinstance(public, SplitView)
        yield Views(internal, public, f"127.0.0.1:{internal.port}", f"127.0.0.1:{public.port}")


@contextlib.contextmanager
def silent_udp_port() -> Iterator[int]:
    """A port that takes queries and never answers: a resolver that is down but not refusing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def closed_udp_port() -> int:
    """A port nothing listens on: queries get ICMP port unreachable."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def accept_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    return None


def tcp_module(servers: object, **extra: object) -> dict[str, object]:
    return {"prober": "tcp", "tcp": {"dns_server": servers, "dns_timeout": "500ms", **extra}}


# --- split horizon, per prober ---------------------------------------------------------------------


async def test_tcp_through_each_view() -> None:
    async with split_views() as views, serve(accept_and_close, host="0.0.0.0") as port:
        internal = await probe(tcp_module(views.internal_address), f"site.split.test:{port}")
        public = await probe(tcp_module(views.public_address), f"site.split.test:{port}")
        by_system = await probe({"prober": "tcp"}, f"127.0.0.1:{port}")
    assert internal.success, log_text(internal)
    assert public.success, log_text(public)
    assert names(internal) == names(public) == names(by_system)  # the same metrics as without dns_server
    assert value(internal, "probe_ip_addr_hash") == INTERNAL_HASH
    assert value(public, "probe_ip_addr_hash") == PUBLIC_HASH
    # ip6 preferred with fallback, as by default: both types asked, the A record used.
    assert value(internal, "probe_ip_protocol") == 4
    assert sorted(dns.rdatatype.to_text(q.question[0].rdtype) for q in views.internal.queries) == ["A", "AAAA"]
    assert views.internal.names_asked() == [SITE, SITE]
    assert value(internal, "probe_dns_lookup_time_seconds") > 0


async def test_icmp_through_each_view() -> None:
    async with split_views() as views:
        block = {"preferred_ip_protocol": "ip4", "ip_protocol_fallback": False}
        internal = await probe({"prober": "icmp", "icmp": {**block, "dns_server": views.internal_address}},
                               "site.split.test")
        public = await probe({"prober": "icmp", "icmp": {**block, "dns_server": [views.public_address]}},
                             "site.split.test")
    assert internal.success and public.success, log_text(internal) + log_text(public)
    assert value(internal, "probe_ip_addr_hash") == INTERNAL_HASH
    assert value(public, "probe_ip_addr_hash") == PUBLIC_HASH
    # ip4 without fallback asks for A only.
    assert [dns.rdatatype.to_text(q.question[0].rdtype) for q in views.public.queries] == ["A"]


async def test_grpc_through_each_view() -> None:
    async with split_views() as views, grpc_health_server(host="0.0.0.0") as server:
        outcomes = [await probe({"prober": "grpc", "grpc": {"dns_server": address}}, f"site.split.test:{server.port}")
                    for address in (views.internal_address, views.public_address)]
    assert all(outcome.success for outcome in outcomes), [log_text(outcome) for outcome in outcomes]
    assert [value(outcome, "probe_ip_addr_hash") for outcome in outcomes] == [INTERNAL_HASH, PUBLIC_HASH]


async def http_site(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """`/` redirects to other.split.test (same port); everything else is a 200."""
    request = await reader.readuntil(b"\r\n\r\n")
    path = request.split(b" ", 2)[1]
    host = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n") if line.lower().startswith(b"host:"))
    if path == b"/":
        port = host.rsplit(b":", 1)[1]
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://other.split.test:" + port + b"/landing\r\n"
                     b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    else:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await writer.drain()


async def test_http_and_its_redirects_through_the_module_resolver() -> None:
    async with split_views() as views, serve(http_site, host="0.0.0.0") as port:
        module = {"prober": "http", "http": {"dns_server": views.public_address, "preferred_ip_protocol": "ip4"}}
        outcome = await probe(module, f"http://site.split.test:{port}/")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_ip_addr_hash") == PUBLIC_HASH
    assert value(outcome, "probe_http_redirects") == 1
    # The redirect's host exists only in the module's DNS: it was looked up there too.
    assert OTHER in views.public.names_asked()
    assert views.internal.queries == []


# --- servers tried in order, failures ----------------------------------------------------------------


async def test_servers_are_tried_in_order() -> None:
    with silent_udp_port() as silent:
        async with split_views() as views:
            servers = [f"127.0.0.1:{closed_udp_port()}", f"127.0.0.1:{silent}", views.public_address,
                       views.internal_address]
            outcome = await probe(tcp_module(servers, preferred_ip_protocol="ip4"), "site.split.test:1")
    # The first two do not answer; the third does (port 1 then refuses the connection: the lookup is what counts).
    assert value(outcome, "probe_ip_addr_hash") == PUBLIC_HASH
    assert views.internal.queries == []


async def test_a_resolver_that_is_down_fails_with_its_address() -> None:
    with silent_udp_port() as silent:
        outcome = await probe(tcp_module(f"127.0.0.1:{silent}"), "site.split.test:80", timeout=2.0)
    assert not outcome.success
    assert outcome.reason == f"Resolution with IP protocol failed: resolver 127.0.0.1:{silent} did not answer"
    assert names(outcome) == ALWAYS | ADDRESS_METRICS
    assert value(outcome, "probe_ip_addr_hash") == 0
    assert value(outcome, "probe_ip_protocol") == 0
    assert value(outcome, "probe_dns_lookup_time_seconds") > 0


async def test_every_resolver_down_names_each() -> None:
    refused = closed_udp_port()
    with silent_udp_port() as silent:
        outcome = await probe(tcp_module([f"127.0.0.1:{refused}", f"127.0.0.1:{silent}"]), "site.split.test:80")
    assert not outcome.success
    assert outcome.reason == (f"Resolution with IP protocol failed: resolver 127.0.0.1:{refused} did not answer; "
                              f"resolver 127.0.0.1:{silent} did not answer")


async def test_dns_timeout_longer_than_the_probe_still_reports_the_resolver() -> None:
    with silent_udp_port() as silent:
        module = {"prober": "tcp", "tcp": {"dns_server": f"127.0.0.1:{silent}", "dns_timeout": "30s"}}
        outcome = await probe(module, "site.split.test:80", timeout=0.5)
    assert not outcome.success
    assert outcome.reason == f"Resolution with IP protocol failed: resolver 127.0.0.1:{silent} did not answer"


async def test_no_such_host_is_an_answer_not_a_reason_to_ask_the_next() -> None:
    async with split_views() as views:
        outcome = await probe(tcp_module([views.internal_address, views.public_address]), "nope.split.test:80")
    assert not outcome.success
    assert outcome.reason == (f"Resolution with IP protocol failed: lookup nope.split.test on "
                              f"{views.internal_address}: no such host")
    assert views.public.queries == []


async def test_servfail_moves_on_to_the_next_server() -> None:
    async with split_views() as views:
        views.internal.servfail = True
        outcome = await probe(tcp_module([views.internal_address, views.public_address],
                                         preferred_ip_protocol="ip4"), "site.split.test:1")
    assert value(outcome, "probe_ip_addr_hash") == PUBLIC_HASH
    assert views.internal.queries  # asked first, answered SERVFAIL


async def test_servfail_everywhere_is_the_reason() -> None:
    async with split_views() as views:
        views.internal.servfail = True
        outcome = await probe(tcp_module(views.internal_address), "site.split.test:80")
    assert not outcome.success
    assert outcome.reason == f"Resolution with IP protocol failed: resolver {views.internal_address} answered SERVFAIL"


async def test_truncated_udp_answer_is_retried_over_tcp() -> None:
    async with split_views() as views, serve(accept_and_close, host="0.0.0.0") as port:
        outcome = await probe(tcp_module(views.internal_address, preferred_ip_protocol="ip4",
                                         ip_protocol_fallback=False), f"big.split.test:{port}")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_ip_addr_hash") == INTERNAL_HASH
    assert views.internal.transports == ["udp", "tcp"]


async def test_ip_literal_targets_need_no_lookup() -> None:
    with silent_udp_port() as silent:
        outcome = await probe({"prober": "icmp", "icmp": {"dns_server": f"127.0.0.1:{silent}"}}, "127.0.0.1")
    assert outcome.success, log_text(outcome)


async def test_without_dns_server_the_system_resolver_is_used() -> None:
    outcome = await probe({"prober": "tcp"}, "localhost:1")
    assert value(outcome, "probe_ip_protocol") in (4, 6)  # resolved by the system; port 1 refuses
    assert resolver.current() is None


# --- config ----------------------------------------------------------------------------------------


def test_one_server_or_a_list() -> None:
    one = Module.model_validate({"prober": "http", "http": {"dns_server": "10.0.0.53:53"}})
    many = Module.model_validate({"prober": "tcp", "tcp": {"dns_server": ["10.0.0.53", "[fd00::53]:5353"],
                                                           "dns_timeout": "1s"}})
    assert one.http.dns_server == ["10.0.0.53:53"]
    assert one.http.dns_timeout == 3.0  # upstream PR #1542's default
    assert [str(parse_server(s)) for s in many.tcp.dns_server] == ["10.0.0.53:53", "[fd00::53]:5353"]
    assert many.tcp.dns_timeout == 1.0
    for block in ("icmp", "grpc", "websocket"):  # websocket: the block only, until its prober is registered
        module = Module.model_validate({"prober": "tcp", block: {"dns_server": "10.0.0.53"}})
        assert getattr(module, block).dns_server == ["10.0.0.53"]


@pytest.mark.parametrize("entry", ["dns.example:53", "10.0.0.53:", "10.0.0.53:99999", "[fd00::53]x", "", "a:b:c"])
def test_bad_server_entries(entry: str) -> None:
    with pytest.raises(ValidationError, match="is not an IP address with an optional port"):
        Module.model_validate({"prober": "tcp", "tcp": {"dns_server": entry}})


def test_bad_server_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "blackbox.yml"
    path.write_text("modules:\n  m:\n    prober: http\n    http:\n      dns_server:\n        - 10.0.0.53:53\n"
                    "        - ns.example:53\n")
    with pytest.raises(ConfigError) as caught:
        load_config([str(path)])
    assert str(caught.value) == (
        f"error parsing config file: {path}:7: modules.m.http.dns_server.1: dns_server 'ns.example:53' is not an "
        "IP address with an optional port (10.0.0.53, 10.0.0.53:53, [fd00::53]:53)")


def test_dns_timeout_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="dns_timeout must be greater than 0"):
        Module.model_validate({"prober": "tcp", "tcp": {"dns_server": "10.0.0.53", "dns_timeout": "0s"}})


def test_dns_server_is_not_a_dns_prober_key() -> None:
    """The dns prober's target already is the server it asks."""
    with pytest.raises(ValidationError, match="dns_server"):
        Module.model_validate({"prober": "dns", "dns": {"query_name": "a", "dns_server": "10.0.0.53"}})


def test_config_page_shows_resolver_keys_only_when_set() -> None:
    for prober in ("http", "tcp", "icmp", "grpc"):
        assert "dns_" not in module_as_yaml(Module.model_validate({"prober": prober}))
    shown = module_as_yaml(Module.model_validate({"prober": "tcp", "tcp": {"dns_server": "10.0.0.53:53"}}))
    assert "  dns_server:\n  - 10.0.0.53:53\n" in shown
    assert "dns_timeout" not in shown  # the default
    timed = module_as_yaml(Module.model_validate({"prober": "tcp", "tcp": {"dns_server": "::1", "dns_timeout": "1s"}}))
    assert "  dns_timeout: 1s\n" in timed


async def test_a_resolver_reached_over_ipv6() -> None:
    async with dns_server(host="::1", server=SplitView(address="127.0.0.2")) as view:
        module = {"prober": "icmp", "icmp": {"dns_server": f"[::1]:{view.port}", "preferred_ip_protocol": "ip4"}}
        outcome = await probe(module, "site.split.test")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_ip_addr_hash") == PUBLIC_HASH

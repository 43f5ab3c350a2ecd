"""The dns prober against a real DNS server on loopback (UDP, TCP, DoT): rcodes, validators, metrics."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import ValidationError

from probe_exporter.config import Module
from tests.support.dns_server import DNSServer, dns_server
from tests.support.network_probe import ADDRESS_METRICS, ALWAYS, log_text, names, probe, value
from tests.support.ports import free_port
from tests.support.tcp_servers import PKI, make_pki

DNS_METRICS = {"probe_dns_duration_seconds", "probe_dns_answer_rrs", "probe_dns_authority_rrs",
               "probe_dns_additional_rrs", "probe_dns_query_succeeded"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(pki: PKI) -> AsyncIterator[DNSServer]:
    async with dns_server(tls_context=pki.server_context()) as running:
        yield running


def dns_module(**block: object) -> dict[str, object]:
    return {"prober": "dns", "dns": {"preferred_ip_protocol": "ip4", "query_name": "www.example.test",
                                     "query_type": "A", **block}}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_answer_metrics(server: DNSServer, transport: str) -> None:
    outcome = await probe(dns_module(transport_protocol=transport), f"127.0.0.1:{server.port}")
    assert outcome.success, log_text(outcome)
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | DNS_METRICS
    assert value(outcome, "probe_dns_answer_rrs") == 2
    assert value(outcome, "probe_dns_authority_rrs") == 1
    assert value(outcome, "probe_dns_additional_rrs") == 1
    assert value(outcome, "probe_dns_query_succeeded") == 1
    assert value(outcome, "probe_dns_duration_seconds", phase="request") > 0
    assert value(outcome, "probe_dns_duration_seconds", phase="resolve") >= 0
    assert "dial_protocol=" + transport + "4" in log_text(outcome)


async def test_query_has_no_edns_and_recursion_desired_by_default(server: DNSServer) -> None:
    rd_on = await probe(dns_module(query_name="rd.example.test", query_type="TXT", validate_answer_rrs={
        "fail_if_not_matches_regexp": ['"rd=1"']}), f"127.0.0.1:{server.port}")
    rd_off = await probe(dns_module(query_name="rd.example.test", query_type="TXT", recursion_desired=False,
                                    validate_answer_rrs={"fail_if_not_matches_regexp": ['"rd=0"']}),
                         f"127.0.0.1:{server.port}")
    assert rd_on.success, log_text(rd_on)
    assert rd_off.success, log_text(rd_off)
    assert server.queries[-1].edns == -1


async def test_rr_text_is_miekg_tab_separated(server: DNSServer) -> None:
    """The validators see `name<TAB>ttl<TAB>class<TAB>type<TAB>rdata`, as miekg's RR.String()."""
    outcome = await probe(dns_module(validate_answer_rrs={
        "fail_if_not_matches_regexp": ["^www\\.example\\.test\\.\t300\tIN\tA\t192\\.0\\.2\\.[12]$"]},
        validate_authority_rrs={"fail_if_not_matches_regexp": ["^example\\.test\\.\t3600\tIN\tNS\tns1\\.example"
                                                               "\\.test\\.$"]},
        validate_additional_rrs={"fail_if_none_matches_regexp": ["^ns1\\.example\\.test\\.\t3600\tIN\tA\t"]}),
        f"127.0.0.1:{server.port}")
    assert outcome.success, log_text(outcome)


@pytest.mark.parametrize(("name", "qtype", "expected"), [
    ("mx.example.test", "MX", "mx.example.test.\t300\tIN\tMX\t10 mail.example.test."),
    ("txt.example.test", "TXT", 'txt.example.test.\t300\tIN\tTXT\t"hello world" "second"'),
    ("example.test", "SOA", "example.test.\t300\tIN\tSOA\tns1.example.test. hostmaster.example.test. "
                            "2024010101 7200 3600 1209600 3600"),
    ("ds.example.test", "DS", "ds.example.test.\t300\tIN\tDS\t60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118"),
    ("www.example.test", "AAAA", "www.example.test.\t300\tIN\tAAAA\t2001:db8::1"),
])
async def test_rr_text_per_type(server: DNSServer, name: str, qtype: str, expected: str) -> None:
    import re2

    outcome = await probe(dns_module(query_name=name, query_type=qtype, validate_answer_rrs={
        "fail_if_not_matches_regexp": ["^" + re2.escape(expected) + "$"]}), f"127.0.0.1:{server.port}")
    assert outcome.success, log_text(outcome)


async def test_soa_serial(server: DNSServer) -> None:
    outcome = await probe(dns_module(query_name="example.test", query_type="SOA"), f"127.0.0.1:{server.port}")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_dns_serial") == 2024010101
    a_query = await probe(dns_module(), f"127.0.0.1:{server.port}")
    assert "probe_dns_serial" not in names(a_query)


async def test_any_is_the_default_type(server: DNSServer) -> None:
    outcome = await probe({"prober": "dns", "dns": {"preferred_ip_protocol": "ip4",
                                                    "query_name": "www.example.test"}}, f"127.0.0.1:{server.port}")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_dns_answer_rrs") == 3  # two A and one AAAA


async def test_servfail_fails_but_query_succeeded(server: DNSServer) -> None:
    outcome = await probe(dns_module(query_name="servfail.example.test"), f"127.0.0.1:{server.port}")
    assert not outcome.success
    assert value(outcome, "probe_dns_query_succeeded") == 1
    assert "Rcode is not one of the valid rcodes" in log_text(outcome)


async def test_valid_rcodes(server: DNSServer) -> None:
    nx = dns_module(query_name="missing.example.test", valid_rcodes=["NXDOMAIN"])
    ok = await probe(nx, f"127.0.0.1:{server.port}")
    assert ok.success, log_text(ok)
    assert value(ok, "probe_dns_authority_rrs") == 1
    default = await probe(dns_module(query_name="missing.example.test"), f"127.0.0.1:{server.port}")
    assert not default.success
    unknown = await probe(dns_module(valid_rcodes=["NOSUCHRCODE"]), f"127.0.0.1:{server.port}")
    assert not unknown.success
    assert "Invalid rcode" in log_text(unknown)


# The 4 validator kinds x 3 sections, as upstream's dns_test: (validator, regexps, expect success).
# Note fail_if_all_match_regexp: upstream fails when NOT every RR matches (its log says "Not all RRs
# matched regexp"), whatever the name suggests; that behaviour is kept.
VALIDATOR_CASES = [
    ("fail_if_matches_regexp", [".*192.0.2.1"], "validate_answer_rrs", False),
    ("fail_if_matches_regexp", [".*198.51.100.1"], "validate_answer_rrs", True),
    ("fail_if_all_match_regexp", [".*192.0.2"], "validate_answer_rrs", True),
    ("fail_if_all_match_regexp", [".*192.0.2.1$"], "validate_answer_rrs", False),
    ("fail_if_not_matches_regexp", ["192.0.2.1$"], "validate_answer_rrs", False),
    ("fail_if_not_matches_regexp", ["\tIN\tA\t"], "validate_answer_rrs", True),
    ("fail_if_none_matches_regexp", ["198.51.100"], "validate_answer_rrs", False),
    ("fail_if_none_matches_regexp", ["192.0.2.2"], "validate_answer_rrs", True),
    ("fail_if_matches_regexp", ["ns1"], "validate_authority_rrs", False),
    ("fail_if_all_match_regexp", ["\tNS\t"], "validate_authority_rrs", True),
    ("fail_if_not_matches_regexp", ["\tSOA\t"], "validate_authority_rrs", False),
    ("fail_if_none_matches_regexp", ["\tNS\t"], "validate_authority_rrs", True),
    ("fail_if_matches_regexp", ["192.0.2.53"], "validate_additional_rrs", False),
    ("fail_if_all_match_regexp", ["nope"], "validate_additional_rrs", False),
    ("fail_if_not_matches_regexp", ["\tA\t"], "validate_additional_rrs", True),
    ("fail_if_none_matches_regexp", ["\tAAAA\t"], "validate_additional_rrs", False),
]


@pytest.mark.parametrize(("kind", "regexps", "section", "expected"), VALIDATOR_CASES)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_validators(server: DNSServer, transport: str, kind: str, regexps: list[str], section: str,
                          expected: bool) -> None:
    outcome = await probe(dns_module(transport_protocol=transport, **{section: {kind: regexps}}),
                          f"127.0.0.1:{server.port}")
    assert outcome.success is expected, log_text(outcome)
    assert value(outcome, "probe_dns_query_succeeded") == 1


async def test_empty_section_with_not_matches_fails(server: DNSServer) -> None:
    outcome = await probe(dns_module(query_name="missing.example.test", valid_rcodes=["NXDOMAIN"],
                                     validate_answer_rrs={"fail_if_not_matches_regexp": ["."]}),
                          f"127.0.0.1:{server.port}")
    assert not outcome.success
    assert "fail_if_not_matches_regexp specified but no RRs returned" in log_text(outcome)


async def test_bad_regexp_fails_the_probe_not_the_load(server: DNSServer) -> None:
    outcome = await probe(dns_module(validate_answer_rrs={"fail_if_matches_regexp": [":["]}),
                          f"127.0.0.1:{server.port}")
    assert not outcome.success
    assert "Error matching regexp" in log_text(outcome)


async def test_truncated_udp_then_tcp(server: DNSServer) -> None:
    udp = await probe(dns_module(query_name="big.example.test", query_type="TXT"), f"127.0.0.1:{server.port}")
    tcp = await probe(dns_module(query_name="big.example.test", query_type="TXT", transport_protocol="tcp"),
                      f"127.0.0.1:{server.port}")
    assert udp.success and value(udp, "probe_dns_answer_rrs") == 0  # TC set, no retry over TCP (as miekg)
    assert tcp.success and value(tcp, "probe_dns_answer_rrs") == 20


async def test_query_class_chaos(server: DNSServer) -> None:
    outcome = await probe(dns_module(query_name="version.bind", query_type="TXT", query_class="CH",
                                     validate_answer_rrs={"fail_if_not_matches_regexp": ["\tCH\tTXT\t\"probe-test\""]}),
                          f"127.0.0.1:{server.port}")
    assert outcome.success, log_text(outcome)


async def test_miekg_names_dnspython_lacks(server: DNSServer) -> None:
    """Class CS and type ATMA exist in miekg's tables (so upstream configs use them) but not in dnspython's."""
    await probe(dns_module(query_type="ATMA", query_class="CS"), f"127.0.0.1:{server.port}")
    question = server.queries[-1].question[0]
    assert (int(question.rdclass), int(question.rdtype)) == (2, 34)


async def test_dns_over_tls(server: DNSServer, pki: PKI) -> None:
    outcome = await probe(dns_module(transport_protocol="tcp", dns_over_tls=True,
                                     tls_config={"ca_file": pki.ca_file, "server_name": "localhost"}),
                          f"127.0.0.1:{server.tls_port}")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_dns_answer_rrs") == 2
    # No TLS metrics from the dns prober, as upstream.
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | DNS_METRICS


async def test_dns_over_tls_bad_certificate(server: DNSServer, pki: PKI) -> None:
    outcome = await probe(dns_module(transport_protocol="tcp", dns_over_tls=True,
                                     tls_config={"ca_file": pki.other_ca_file}), f"127.0.0.1:{server.tls_port}")
    assert not outcome.success
    assert value(outcome, "probe_dns_query_succeeded") == 0
    assert "Error while sending a DNS query" in log_text(outcome)


async def test_dns_over_tls_requires_tcp(server: DNSServer) -> None:
    outcome = await probe(dns_module(dns_over_tls=True), f"127.0.0.1:{server.tls_port}")
    assert not outcome.success
    assert "Expected transport protocol tcp for DoT" in log_text(outcome)


async def test_unknown_transport_fails_at_probe_time(server: DNSServer) -> None:
    outcome = await probe(dns_module(transport_protocol="sctp"), f"127.0.0.1:{server.port}")
    assert not outcome.success
    assert names(outcome) == ALWAYS | DNS_METRICS
    assert "Expected transport protocol udp or tcp" in log_text(outcome)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_source_ip_address(transport: str) -> None:
    async with dns_server(host="0.0.0.0") as any_address:
        outcome = await probe(dns_module(transport_protocol=transport, source_ip_address="127.0.0.2"),
                              f"127.0.0.1:{any_address.port}")
    assert outcome.success, log_text(outcome)
    assert any_address.sources == ["127.0.0.2"]


async def test_ipv6_server() -> None:
    async with dns_server(host="::1") as v6:
        outcome = await probe({"prober": "dns", "dns": {"query_name": "www.example.test", "query_type": "A"}},
                              f"[::1]:{v6.port}")
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_ip_protocol") == 6


async def test_udp_port_unreachable() -> None:
    outcome = await probe(dns_module(), f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}")
    assert not outcome.success
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | DNS_METRICS
    assert value(outcome, "probe_dns_query_succeeded") == 0
    assert "connection refused" in log_text(outcome)


async def test_tcp_connection_refused() -> None:
    outcome = await probe(dns_module(transport_protocol="tcp"), f"127.0.0.1:{free_port(socket.SOCK_STREAM)}")
    assert not outcome.success
    assert "connection refused" in log_text(outcome)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_no_answer_times_out_inside_deadline(server: DNSServer, transport: str) -> None:
    start = time.monotonic()
    outcome = await probe(dns_module(query_name="slow.example.test", transport_protocol=transport),
                          f"127.0.0.1:{server.port}", timeout=0.3)
    assert not outcome.success
    assert time.monotonic() - start < 0.8
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | DNS_METRICS
    assert value(outcome, "probe_dns_query_succeeded") == 0
    assert value(outcome, "probe_dns_duration_seconds", phase="request") > 0.2
    assert "Error while sending a DNS query" in log_text(outcome)


async def test_target_without_port_uses_53() -> None:
    outcome = await probe(dns_module(), "127.0.0.1", timeout=0.5)
    assert "127.0.0.1:53" in log_text(outcome)


@pytest.mark.parametrize(("block", "message"), [
    ({"query_type": "a", "query_name": "x"}, "query type 'a' is not valid"),
    ({"query_type": "TYPE65", "query_name": "x"}, "query type 'TYPE65' is not valid"),
    ({"query_class": "in", "query_name": "x"}, "query class 'in' is not valid"),
    ({"query_type": "A"}, "query name must be set for DNS module"),
])
def test_load_errors_as_upstream(block: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Module.model_validate({"prober": "dns", "dns": block})


def test_example_dns_modules_load(tmp_path: Path) -> None:
    from probe_exporter.config import load_config

    path = tmp_path / "dns.yml"
    path.write_text("""modules:
  dns_udp_example:
    prober: dns
    timeout: 5s
    dns:
      query_name: "www.prometheus.io"
      query_type: "A"
      valid_rcodes:
        - NOERROR
      validate_answer_rrs:
        fail_if_matches_regexp:
          - ".*127.0.0.1"
        fail_if_all_match_regexp:
          - ".*127.0.0.1"
        fail_if_not_matches_regexp:
          - "www.prometheus.io.\\t300\\tIN\\tA\\t127.0.0.1"
        fail_if_none_matches_regexp:
          - "127.0.0.1"
      validate_authority_rrs:
        fail_if_matches_regexp:
          - ".*127.0.0.1"
      validate_additional_rrs:
        fail_if_matches_regexp:
          - ".*127.0.0.1"
  dns_soa:
    prober: dns
    dns:
      query_name: "prometheus.io"
      query_type: "SOA"
  dns_tcp_example:
    prober: dns
    dns:
      transport_protocol: "tcp" # defaults to "udp"
      preferred_ip_protocol: "ip4" # defaults to "ip6"
      query_name: "www.prometheus.io"
""")
    modules = load_config([str(path)]).modules
    assert modules["dns_udp_example"].dns.validate_answer_rrs.fail_if_not_matches_regexp == [
        "www.prometheus.io.\t300\tIN\tA\t127.0.0.1"]


def test_rr_text_generic_and_miekg_only_types() -> None:
    import dns.rrset

    from probe_exporter.probers.net.dns_text import rr_texts

    atma = dns.rrset.from_text_list("x.example.", 5, "IN", "TYPE34", [r"\# 2 0102"])
    unknown = dns.rrset.from_text_list("x.example.", 5, "IN", "TYPE65280", [r"\# 1 ff"])
    assert list(rr_texts([atma, unknown])) == ["x.example.\t5\tIN\tATMA\t\\# 2 0102",
                                               "x.example.\t5\tIN\tTYPE65280\t\\# 1 ff"]

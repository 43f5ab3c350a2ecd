"""The DNS prober: blackbox_exporter's prober/dns.go semantics, messages built and parsed by dnspython.

The exchange itself is done here on asyncio (UDP datagram endpoint, TCP or DNS-over-TLS stream)
so the connect and request phases are timed as upstream (connect = total - rtt, request = rtt,
where rtt starts after the connection exists), and source_ip_address applies to every transport.
Validators match each record in miekg's tab-separated RR.String() form (see dns_text).
"""

from __future__ import annotations

import asyncio
import functools
import socket
import struct
import time
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import re2

from probe_exporter.config.blackbox import DNS_QUERY_CLASSES, MIEKG_ONLY_TYPES, DNSProbe, DNSRRValidator
from probe_exporter.logs import ProbeLog
from probe_exporter.probers.base import ProbeContext, Prober
from probe_exporter.probers.net.addr import resolve_host
from probe_exporter.probers.net.dns_text import additional_texts, record_count, rr_texts
from probe_exporter.probers.net.hostport import (
    HostPortError,
    join_host_port,
    port_number,
    split_host_port,
)
from probe_exporter.probers.neterrors import describe_os_error
from probe_exporter.probers.tcp import module_ssl_context

# miekg/dns StringToRcode (case-sensitive, NOTIMPL kept for compatibility as miekg does).
RCODES = {
    "NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "NOTIMPL": 4, "REFUSED": 5,
    "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10, "BADSIG": 16, "BADVERS": 16,
    "BADKEY": 17, "BADTIME": 18, "BADMODE": 19, "BADNAME": 20, "BADALG": 21, "BADTRUNC": 22, "BADCOOKIE": 23,
}
_RCODE_NAMES = {number: name for name, number in reversed(RCODES.items())}
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class _Exchange:
    """Timestamps of one query: when the connection was ready, when the answer arrived."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.connected: float | None = None
        self.answered: float | None = None

    def phases(self) -> tuple[float, float]:
        """(connect, ctx) seconds; on failure the request phase runs until now."""
        end = self.answered or time.monotonic()
        connected = self.connected or end
        return connected - self.start, end - connected


class _UDPClient(asyncio.DatagramProtocol):
    def __init__(self, query: dns.message.Message) -> None:
        self.query = query
        self.answer: asyncio.Future[dns.message.Message] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.answer.done():
            return
        try:
            message = dns.message.from_wire(data, ignore_trailing=True)
        except dns.exception.DNSException as err:
            self.answer.set_exception(err)
            return
        # Late answers to someone else's query are not ours: keep waiting, as a resolver would.
        if self.query.is_response(message):
            self.answer.set_result(message)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("socket closed"))


async def _exchange_udp(query: dns.message.Message, ip: str, port: int, source: str | None,
                        timing: _Exchange) -> dns.message.Message:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _UDPClient(query), remote_addr=(ip, port), family=family,
        local_addr=(source, 0) if source else None)
    try:
        timing.connected = time.monotonic()
        transport.sendto(query.to_wire())
        answer = await protocol.answer
        timing.answered = time.monotonic()
        return answer
    finally:
        transport.close()


async def _exchange_stream(query: dns.message.Message, ip: str, port: int, source: str | None, timing: _Exchange,
                           ctx: ProbeContext, server_name: str | None) -> dns.message.Message:
    tls = server_name is not None
    context = module_ssl_context(ctx, "dns.ssl", ctx.module.dns.tls_config) if tls else None
    reader, writer = await asyncio.open_connection(
        ip, port, family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
        local_addr=(source, 0) if source else None, ssl=context, server_hostname=server_name,
        ssl_handshake_timeout=max(ctx.timeout, 0.001) if tls else None)
    try:
        timing.connected = time.monotonic()
        wire = query.to_wire()
        writer.write(struct.pack("!H", len(wire)) + wire)
        await writer.drain()
        while True:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            message = dns.message.from_wire(await reader.readexactly(length), ignore_trailing=True)
            if query.is_response(message):
                timing.answered = time.monotonic()
                return message
    finally:
        writer.close()


@functools.lru_cache(maxsize=512)
def _compile(pattern: str) -> Any:
    return re2.compile(pattern, options=_RE2_OPTIONS)


def _valid_rrs(texts: list[str], validator: DNSRRValidator, log: ProbeLog) -> bool:
    """blackbox's validRRs, in its order; regexes compile here (a bad one fails the probe, not the load)."""
    if not texts and validator.fail_if_not_matches_regexp:
        log.error("fail_if_not_matches_regexp specified but no RRs returned")
        return False
    if not texts and validator.fail_if_none_matches_regexp:
        log.error("fail_if_none_matches_regexp specified but no RRs returned")
        return False
    any_match, all_match = False, True
    try:
        for text in texts:
            log.debug("Validating RR", rr=text)
            for pattern in validator.fail_if_matches_regexp:
                if _compile(pattern).search(text):
                    log.error("At least one RR matched regexp", regexp=pattern, rr=text)
                    return False
            for pattern in validator.fail_if_all_match_regexp:
                if not _compile(pattern).search(text):
                    all_match = False
            for pattern in validator.fail_if_not_matches_regexp:
                if not _compile(pattern).search(text):
                    log.error("At least one RR did not match regexp", regexp=pattern, rr=text)
                    return False
            for pattern in validator.fail_if_none_matches_regexp:
                if _compile(pattern).search(text):
                    any_match = True
    except re2.error as err:
        log.error("Error matching regexp", err=str(err))
        return False
    if validator.fail_if_all_match_regexp and not all_match:
        log.error("Not all RRs matched regexp")
        return False
    if validator.fail_if_none_matches_regexp and not any_match:
        log.error("None of the RRs did matched any regexp")
        return False
    return True


def _valid_rcode(rcode: int, valid: list[str], log: ProbeLog) -> bool:
    wanted: list[int] = []
    for name in valid or ["NOERROR"]:
        if name not in RCODES:
            log.error("Invalid rcode", rcode=name)
            return False
        wanted.append(RCODES[name])
    if rcode in wanted:
        log.debug("Rcode is valid", rcode=rcode, string_rcode=_RCODE_NAMES.get(rcode, str(rcode)))
        return True
    log.error("Rcode is not one of the valid rcodes", rcode=rcode, string_rcode=_RCODE_NAMES.get(rcode, str(rcode)),
              valid_rcodes=",".join(valid or ["NOERROR"]))
    return False


def _build_query(cfg: DNSProbe) -> dns.message.Message:
    type_name = cfg.query_type or "ANY"
    qtype = dns.rdatatype.RdataType.make(MIEKG_ONLY_TYPES.get(type_name) or type_name)
    qclass = dns.rdataclass.RdataClass.make(DNS_QUERY_CLASSES.get(cfg.query_class or "IN") or cfg.query_class)
    query = dns.message.make_query(dns.name.from_text(cfg.query_name or "."), qtype, qclass)  # no EDNS, as upstream
    if not cfg.recursion_desired:
        query.flags &= ~dns.flags.RD
    return query


async def probe_dns(ctx: ProbeContext) -> bool:
    metrics, log = ctx.metrics, ctx.log
    cfg: DNSProbe = ctx.module.dns
    durations = metrics.gauge_vec("probe_dns_duration_seconds", "Duration of DNS request by phase", ["phase"])
    for phase in ("resolve", "connect", "request"):
        durations.labels(phase)
    answer_rrs = metrics.gauge("probe_dns_answer_rrs", "Returns number of entries in the answer resource record list")
    authority_rrs = metrics.gauge("probe_dns_authority_rrs",
                                  "Returns number of entries in the authority resource record list")
    additional_rrs = metrics.gauge("probe_dns_additional_rrs",
                                   "Returns number of entries in the additional resource record list")
    query_succeeded = metrics.gauge("probe_dns_query_succeeded",
                                    "Displays whether or not the query was executed successfully")
    try:
        query = _build_query(cfg)
    except (dns.exception.DNSException, ValueError) as err:
        log.error("Invalid query", err=str(err))
        return False
    transport = cfg.transport_protocol or "udp"
    if transport not in ("udp", "tcp"):
        log.error("Configuration error: Expected transport protocol udp or tcp", protocol=transport)
        return False

    try:
        host, port_text = split_host_port(ctx.target)
    except HostPortError:
        # Only a host: the default port, as upstream.
        host, port_text = ctx.target, "853" if cfg.dns_over_tls else "53"
    try:
        port = port_number(port_text)
    except HostPortError as err:
        log.error("Error parsing target port", err=str(err))
        return False
    ip = await resolve_host(host, cfg, metrics, log, durations)
    if ip is None:
        return False
    if cfg.dns_over_tls and transport != "tcp":
        log.error("Configuration error: Expected transport protocol tcp for DoT", protocol=transport)
        return False
    dial = transport + ("6" if ":" in ip else "4") + ("-tls" if cfg.dns_over_tls else "")
    if cfg.source_ip_address:
        log.debug("Using local address", srcIP=cfg.source_ip_address)
    log.debug("Making DNS query", target=join_host_port(ip, port), dial_protocol=dial, query=cfg.query_name,
              type=cfg.query_type or "ANY", **{"class": cfg.query_class or "IN"})

    timing = _Exchange()
    try:
        if transport == "udp":
            response = await _exchange_udp(query, ip, port, cfg.source_ip_address, timing)
        else:
            server_name = (cfg.tls_config.server_name or host) if cfg.dns_over_tls else None
            response = await _exchange_stream(query, ip, port, cfg.source_ip_address, timing, ctx, server_name)
    except asyncio.CancelledError:
        connect, rtt = timing.phases()
        durations.labels("connect").set(connect)
        durations.labels("request").set(rtt)
        log.error("Error while sending a DNS query", err=f"{dial} {join_host_port(ip, port)}: i/o timeout "
                                                         "(probe deadline)")
        raise
    except (OSError, ValueError, EOFError, dns.exception.DNSException) as err:
        connect, rtt = timing.phases()
        durations.labels("connect").set(connect)
        durations.labels("request").set(rtt)
        reason = "connection closed before the answer" if isinstance(err, EOFError) else (
            describe_os_error(err) if isinstance(err, OSError) else str(err) or type(err).__name__)
        log.error("Error while sending a DNS query", err=f"{dial} {join_host_port(ip, port)}: {reason}")
        return False
    connect, rtt = timing.phases()
    durations.labels("connect").set(connect)
    durations.labels("request").set(rtt)

    answers = list(rr_texts(response.answer))
    authorities = list(rr_texts(response.authority))
    additionals = additional_texts(response)
    log.debug("Got response", rcode=_RCODE_NAMES.get(response.rcode(), str(response.rcode())),
              answer=len(answers), authority=len(authorities), additional=len(additionals))
    answer_rrs.set(record_count(response.answer))
    authority_rrs.set(record_count(response.authority))
    additional_rrs.set(len(additionals))
    query_succeeded.set(1)
    if query.question[0].rdtype == dns.rdatatype.SOA:
        serial = metrics.gauge("probe_dns_serial", "Returns the serial number of the zone")
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                for rdata in rrset:
                    serial.set(rdata.serial)

    if not _valid_rcode(response.rcode(), cfg.valid_rcodes, log):
        return False
    for section, texts, validator in (("Answer", answers, cfg.validate_answer_rrs),
                                      ("Authority", authorities, cfg.validate_authority_rrs),
                                      ("Additional", additionals, cfg.validate_additional_rrs)):
        if not _has_rules(validator):
            continue  # nothing to check: skip the per-record log lines too
        log.debug(f"Validating {section} RRs")
        if not _valid_rrs(texts, validator, log):
            log.error(f"{section} RRs validation failed")
            return False
    return True


def _has_rules(validator: DNSRRValidator) -> bool:
    return bool(validator.fail_if_matches_regexp or validator.fail_if_all_match_regexp
                or validator.fail_if_not_matches_regexp or validator.fail_if_none_matches_regexp)


PROBER = Prober(name="dns", probe=probe_dns, config_model=DNSProbe)

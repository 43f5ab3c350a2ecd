"""Address selection shared by the network probers: blackbox_exporter's chooseProtocol."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Protocol

from probe_exporter.logs import ProbeLog
from probe_exporter.probe_metrics import GaugeVec, ProbeMetrics
from probe_exporter.probers import resolver
from probe_exporter.probers.net.hostport import ip_literal

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def ip_hash(address: str) -> int:
    """FNV-1a 32 over the packed address (4 bytes for IPv4, 16 for IPv6), as upstream's ipHash."""
    value = _FNV_OFFSET
    for byte in ipaddress.ip_address(address).packed:
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


class ResolveError(Exception):
    def __init__(self, message: str, lookup_time: float = 0.0) -> None:
        super().__init__(message)
        self.lookup_time = lookup_time


async def resolve_addresses(host: str, family: int = socket.AF_UNSPEC) -> list[str]:
    """Addresses for host in resolver order; an IP literal resolves to itself without a lookup."""
    literal = ip_literal(host.strip("[]"))
    if literal is not None:
        return [str(literal)]
    module_resolver = resolver.current()
    if module_resolver is not None:  # the module's dns_server, in place of the system resolver
        try:
            return await module_resolver.resolve(host, family)
        except resolver.LookupFailed as err:
            raise ResolveError(str(err)) from None
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, family=family, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise ResolveError(f"lookup {host}: {getattr(err, 'strerror', None) or err}") from None
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%")[0]
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ResolveError(f"lookup {host}: no such host")
    return addresses


async def choose_protocol(host: str, preferred: str, fallback: bool, metrics: ProbeMetrics,
                          log: ProbeLog) -> tuple[str, float]:
    """Resolve host to one address of the preferred family (or the fallback), registering
    probe_ip_protocol, probe_ip_addr_hash and probe_dns_lookup_time_seconds. Returns (ip, lookup seconds)."""
    protocol_gauge = metrics.gauge("probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6")
    lookup_gauge = metrics.gauge("probe_dns_lookup_time_seconds",
                                 "Returns the time taken for probe dns lookup in seconds")
    hash_gauge = metrics.gauge("probe_ip_addr_hash",
                               "Specifies the hash of IP address. It's useful to detect if the IP address changes.")
    # Anything but ip6 (or empty) means ip4, typos included, as upstream.
    want_v6 = preferred in ("ip6", "")
    protocol, fallback_protocol = ("ip6", "ip4") if want_v6 else ("ip4", "ip6")
    log.info("Resolving target address", target=host, ip_protocol=protocol)
    start = time.monotonic()
    try:
        if not fallback:
            family = socket.AF_INET6 if want_v6 else socket.AF_INET
            addresses = await resolve_addresses(host, family)
            chosen = next((a for a in addresses if (":" in a) == want_v6), None)
            if chosen is None:
                raise ResolveError(f"lookup {host}: no {protocol} address")
            chosen_protocol = protocol
        else:
            addresses = await resolve_addresses(host)
            chosen = next((a for a in addresses if (":" in a) == want_v6), None)
            chosen_protocol = protocol
            if chosen is None:
                # Upstream's loop keeps overwriting its fallback: the last other-family address wins.
                others = [a for a in addresses if (":" in a) != want_v6]
                if not others:
                    raise ResolveError("unable to find ip; no fallback")
                chosen, chosen_protocol = others[-1], fallback_protocol
    except ResolveError as err:
        err.lookup_time = time.monotonic() - start
        lookup_gauge.add(err.lookup_time)
        log.error("Resolution with IP protocol failed", target=host, ip_protocol=protocol, err=str(err))
        raise
    lookup_time = time.monotonic() - start
    lookup_gauge.add(lookup_time)
    protocol_gauge.set(6 if chosen_protocol == "ip6" else 4)
    hash_gauge.set(ip_hash(chosen))
    log.info("Resolved target address", target=host, ip=chosen)
    return chosen, lookup_time


class AddressChoice(Protocol):
    """The two settings of a prober block (tcp, dns, grpc, icmp) that pick the address family."""

    @property
    def preferred_ip_protocol(self) -> str: ...

    @property
    def ip_protocol_fallback(self) -> bool: ...


async def resolve_host(host: str, cfg: AddressChoice, metrics: ProbeMetrics, log: ProbeLog,
                       durations: GaugeVec | None = None) -> str | None:
    """choose_protocol for a prober: the chosen ip, or None with the failure logged. The lookup time
    goes to `durations`' `resolve` phase (probe_<prober>_duration_seconds) when given."""
    try:
        ip, lookup_time = await choose_protocol(host, cfg.preferred_ip_protocol, cfg.ip_protocol_fallback, metrics, log)
    except ResolveError as err:
        log.error("Error resolving address", err=str(err))
        return None
    if durations is not None:
        durations.labels("resolve").add(lookup_time)
    return ip

"""snmp_exporter's target syntax, `[transport://]host[:port]`, resolved without blocking the loop."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from pysnmp.carrier.asyncio.dgram import udp, udp6

from probe_exporter.probers.net.hostport import HostPortError, split_host_port
from probe_exporter.probers.snmp.engine import SnmpError

_FAMILIES = {"udp": socket.AF_UNSPEC, "udp4": socket.AF_INET, "udp6": socket.AF_INET6,
             "tcp": socket.AF_UNSPEC, "tcp4": socket.AF_INET, "tcp6": socket.AF_INET6}


@dataclass(frozen=True)
class Target:
    transport: str
    host: str
    port: int

    @property
    def stream(self) -> bool:
        """SNMP over TCP (snmp_exporter 0.23's `tcp://`, RFC 3430)."""
        return self.transport.startswith("tcp")


def parse_target(text: str) -> Target:
    """As scraper.NewGoSNMP: default udp and port 161; `[::1]:1161`, bare `::1`, brackets stripped."""
    transport = "udp"
    if "://" in text:
        transport, text = text.split("://", 1)
    host, port = text, 161
    try:
        split: tuple[str, str] | None = split_host_port(text)
    except HostPortError:  # Go's SplitHostPort failed: the whole text is the host
        split = None
    if split is not None:
        host, port_text = split
        if not port_text.isdigit():
            raise SnmpError(f"error converting port number to int for target {text!r}")
        port = int(port_text)
        if port > 65535:
            raise SnmpError(f"port number {port} out of range for target {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if transport not in _FAMILIES:
        raise SnmpError(f"unsupported transport {transport!r} (udp, udp4, udp6, tcp, tcp4 and tcp6 are supported)")
    return Target(transport, host, port)


def _literal(target: Target) -> tuple[tuple[int, ...], tuple[str, int] | tuple[str, int, int, int]] | None:
    """An IP address written out needs no resolver (whose thread hop costs more than a packet)."""
    if "%" in target.host:  # a zone: left to getaddrinfo
        return None
    try:
        address = ipaddress.ip_address(target.host)
    except ValueError:
        return None
    if address.version == 4 and not target.transport.endswith("6"):
        return udp.DOMAIN_NAME, (str(address), target.port)
    if address.version == 6 and not target.transport.endswith("4"):
        # As the kernel spells an answer's source (inet_ntop): answers are matched on it.
        return udp6.DOMAIN_NAME, (socket.inet_ntop(socket.AF_INET6, address.packed), target.port, 0, 0)
    return None


async def resolve(target: Target) -> tuple[tuple[int, ...], tuple[str, int] | tuple[str, int, int, int]]:
    """The pysnmp transport domain and socket address for the target."""
    literal = _literal(target)
    if literal is not None:
        return literal
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, family=_FAMILIES[target.transport],
                                       type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as err:
        raise SnmpError(f"error connecting to target {target.host}: {err}") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # prefer IPv4, as Go's dialer does for "udp"
    family, _, _, _, address = infos[0]
    if family == socket.AF_INET6:
        return udp6.DOMAIN_NAME, (str(address[0]), int(address[1]), 0, 0)
    return udp.DOMAIN_NAME, (str(address[0]), int(address[1]))


def source_of(text: str) -> tuple[int, str, int] | None:
    """--snmp.source-address (checked by its flag) as (address family, host, port)."""
    if not text:
        return None
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    return family, host, int(port or 0)

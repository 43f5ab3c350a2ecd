"""Targets of the network probers: Go's net.SplitHostPort / JoinHostPort, which the tcp, dns and grpc
targets are parsed with, and the address choice every IP prober starts with."""

from __future__ import annotations

import socket
from typing import Protocol

from probe_exporter.logs import ProbeLog
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.probers.addr import ResolveError, choose_protocol


class HostPortError(ValueError):
    """The target is not `host:port`; the message is Go's AddrError text."""


def split_host_port(target: str) -> tuple[str, str]:
    """`host:port` or `[v6]:port` -> (host, port), with Go's error messages."""
    if target.startswith("["):
        end = target.find("]")
        if end < 0:
            raise HostPortError(f"address {target}: missing ']' in address")
        host, rest = target[1:end], target[end + 1:]
        if not rest:
            raise HostPortError(f"address {target}: missing port in address")
        if not rest.startswith(":"):
            raise HostPortError(f"address {target}: unexpected ']' in address")
        port = rest[1:]
        if ":" in port:  # `[::1]:80:81`
            raise HostPortError(f"address {target}: too many colons in address")
        if "[" in host or "]" in host:
            raise HostPortError(f"address {target}: unexpected '[' in address")
    else:
        host, sep, port = target.rpartition(":")
        if not sep:
            raise HostPortError(f"address {target}: missing port in address")
        if ":" in host:
            raise HostPortError(f"address {target}: too many colons in address")
        if "[" in host or "]" in host:
            raise HostPortError(f"address {target}: unexpected '[' in address")
    if "[" in port or "]" in port:
        raise HostPortError(f"address {target}: unexpected ']' in address")
    return host, port


def join_host_port(host: str, port: str | int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def port_number(port: str) -> int:
    """A numeric port (Go also accepts service names; numbers are what probe targets use)."""
    if port.isdigit() and 0 <= int(port) <= 65535:
        return int(port)
    try:
        return socket.getservbyname(port)
    except OSError:
        raise HostPortError(f"lookup port {port!r}: unknown port") from None


class AddressChoice(Protocol):
    """The two settings of a prober block (tcp, dns, grpc, icmp) that pick the address family."""

    @property
    def preferred_ip_protocol(self) -> str: ...

    @property
    def ip_protocol_fallback(self) -> bool: ...


async def resolve_host(host: str, cfg: AddressChoice, metrics: ProbeMetrics,
                       log: ProbeLog) -> tuple[str, float] | None:
    """choose_protocol for a prober: (ip, lookup seconds), or None with the failure logged."""
    try:
        return await choose_protocol(host, cfg.preferred_ip_protocol, cfg.ip_protocol_fallback, metrics, log)
    except ResolveError as err:
        log.error("Error resolving address", err=str(err))
        return None

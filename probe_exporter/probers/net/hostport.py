"""Targets of the network probers, as text: Go's net.SplitHostPort / JoinHostPort, which every `host:port`
target is parsed with (tcp, dns, grpc, snmp, dns_server entries; target policies), and the one IP-literal
check. A leaf: it imports nothing of the package, so every layer may use it."""

from __future__ import annotations

import ipaddress
import socket


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """host as an address when it is an IP literal (IPv4, IPv6, IPv6 with a `%zone`; no brackets), else None.

    The one IP-literal check: target policies, the resolvers and the HTTP prober's redirects use it."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class HostPortError(ValueError):
    """The target is not `host:port`; the message is Go's AddrError text."""


def split_host_port(target: str, default_port: str | None = None) -> tuple[str, str]:
    """`host:port` or `[v6]:port` -> (host, port), with Go's error messages (HostPortError).

    The one host:port parser. Without `default_port` it is Go's net.SplitHostPort: the port must be
    there (it may be empty: `host:` gives ""). With `default_port`, a target without a port is accepted
    too: `host`, `[v6]` and a bare IPv6 address (`::1`, `fe80::1%eth0`) give (host, default_port)."""
    if default_port is not None:
        if target.startswith("[") and target.endswith("]") and target.count("]") == 1:
            return target[1:-1], default_port
        bare = "[" not in target and "]" not in target
        if bare and (":" not in target or ip_literal(target) is not None):
            return target, default_port
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

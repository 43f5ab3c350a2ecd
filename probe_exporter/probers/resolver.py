"""A resolver per module: `dns_server` / `dns_timeout` on the http, tcp, icmp, grpc and websocket blocks.

When a module sets `dns_server`, the target's name is looked up at those servers, tried in order,
rather than through the system resolver. This lets one exporter check a split-horizon name through
its internal and its public view. Lookups go out as plain DNS queries (UDP, then TCP when the answer
is truncated) with dnspython.

The probe pipeline binds the module's resolver to the probe's context (`bound_to`). The address
selection shared by the probers (addr.resolve_addresses) asks `current()` for it, so every lookup of
the probe uses it, redirects included, without each prober having to pass it down. Nothing changes
for a module without `dns_server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from probe_exporter.config.blackbox import Nameserver, parse_server
from probe_exporter.modulecache import CacheKey

if TYPE_CHECKING:
    from probe_exporter.config import Module

# A lookup attempt uses at most this share of what is left of the probe, so that a resolver that is
# down fails the probe with its own reason, not with the probe's timeout.
SHARE_OF_REMAINING_TIME = 0.9


class LookupFailed(Exception):
    """The name could not be resolved at the module's servers; the message says why, in Go's words."""


def preload() -> None:
    """Import dnspython's resolver parts now (at config load), not inside a module's first probe."""
    import dns.asyncquery  # noqa: F401


class ModuleResolver:
    """Looks names up at a module's DNS servers, in order."""

    def __init__(self, servers: list[str], timeout: float) -> None:
        self.servers = [parse_server(server) for server in servers]
        self.timeout = timeout

    async def resolve(self, host: str, family: int = socket.AF_UNSPEC, deadline: float = float("inf")) -> list[str]:
        """The host's addresses in answer order (AAAA before A when both families are wanted).

        Each server gets dns_timeout, but no more than most of what is left before `deadline`."""
        import dns.exception
        import dns.name

        try:
            name = dns.name.from_text(host.rstrip(".") + ".")  # absolute: no search domains
        except (dns.exception.DNSException, UnicodeError) as err:
            raise LookupFailed(f"lookup {host}: {err}") from None
        rdtypes = ("A",) if family == socket.AF_INET else ("AAAA",) if family == socket.AF_INET6 else ("AAAA", "A")
        failures: list[str] = []
        for server in self.servers:
            budget = min(self.timeout, (deadline - time.monotonic()) * SHARE_OF_REMAINING_TIME)
            try:
                async with asyncio.timeout(max(budget, 0.0)):
                    answers = await asyncio.gather(*(_query(server, name, rdtype) for rdtype in rdtypes))
            except (TimeoutError, OSError, dns.exception.DNSException):
                failures.append(f"resolver {server} did not answer")
                continue
            except _Refused as err:
                failures.append(f"resolver {server} answered {err}")
                continue
            if any(answer is None for answer in answers):
                raise LookupFailed(f"lookup {host} on {server}: no such host")
            addresses = [address for answer in answers for address in answer or ()]
            if not addresses:
                raise LookupFailed(f"lookup {host} on {server}: no such host")
            return addresses
        raise LookupFailed("; ".join(failures))


class _Refused(Exception):
    """The server answered, but not with an answer (SERVFAIL, REFUSED): the next one may do better."""


async def _query(server: Nameserver, name: Any, rdtype: str) -> list[str] | None:
    """The addresses of one type in the answer; None for NXDOMAIN."""
    import dns.asyncquery
    import dns.message
    import dns.rcode
    import dns.rdatatype

    query = dns.message.make_query(name, rdtype)
    # timeout=None: the caller's asyncio.timeout bounds the UDP and TCP attempts together.
    response, _used_tcp = await dns.asyncquery.udp_with_fallback(query, server.address, port=server.port)
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return None
    if rcode != dns.rcode.NOERROR:
        raise _Refused(dns.rcode.to_text(rcode))
    wanted = dns.rdatatype.from_text(rdtype)
    # A recursive answer may lead through a CNAME chain; the addresses are the records of our type.
    return [rdata.to_text() for rrset in response.answer if rrset.rdtype == wanted for rdata in rrset]


@dataclass(frozen=True)
class ProbeResolver:
    """A module's resolver with the deadline of the probe it serves."""

    resolver: ModuleResolver
    deadline: float

    async def resolve(self, host: str, family: int = socket.AF_UNSPEC) -> list[str]:
        return await self.resolver.resolve(host, family, self.deadline)


_current: ContextVar[ProbeResolver | None] = ContextVar("probe_resolver", default=None)


def current() -> ProbeResolver | None:
    """The resolver of the probe running in this context; None means the system resolver."""
    return _current.get()


MODULE_RESOLVER = CacheKey["ModuleResolver"]("resolver")


@contextlib.contextmanager
def bound_to(module: Module, timeout: float) -> Iterator[None]:
    """Within this block, lookups of this probe go to the module's `dns_server`, if it has one."""
    # Any prober block with the two keys (ResolverSettings in config/blackbox.py) takes part.
    block = getattr(module, module.prober, None)
    bound: ProbeResolver | None = None
    if block is not None and getattr(block, "dns_server", None):
        settings: Any = block
        resolver = module.cached(
            MODULE_RESOLVER, lambda: ModuleResolver(settings.dns_server, settings.dns_timeout))
        bound = ProbeResolver(resolver, time.monotonic() + timeout)
    token = _current.set(bound)
    try:
        yield
    finally:
        _current.reset(token)

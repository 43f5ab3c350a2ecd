"""From `?target=` to an endpoint: parse, then check the allowlist, before anything connects.

The target is only an address (host, host:port, [v6]:port, unix:///socket, a SQLite file path) or
a configured alias; never credentials or connection options. A module holding credentials must list
where they may be sent (`target_allow`): that list is also what keeps /probe from being an SSRF tool.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import os
from dataclasses import dataclass, replace

from probe_exporter.config.sql import SQLModule, TargetAlias
from probe_exporter.probers.base import BadRequest
from probe_exporter.probers.net.addr import ResolveError, resolve_addresses

# Characters that could smuggle credentials, options or extra hosts into a DSN or conninfo
# (libpq takes comma-separated host lists; `@`, `?`, `#` restructure a URL).
_FORBIDDEN = set("@?#,;='\"\\`") | {chr(c) for c in range(33)} | {"\x7f"}


@dataclass(frozen=True)
class Endpoint:
    display: str                      # what logs show: the target as given, or alias -> address
    host: str | None = None
    port: int | None = None
    socket: str | None = None         # unix socket path (PG: directory or .s.PGSQL.N file)
    path: str | None = None           # SQLite database file
    seed_script: str | None = None    # SQLite: build `path` from this script on first use
    database: str | None = None
    connect_address: str | None = None  # the allowlist-checked IP to dial, when the host was a name

    @property
    def key(self) -> str:
        """Identifies the server for per-target limits and caches."""
        return f"{self.host or self.socket or self.path or self.seed_script}:{self.port or ''}:{self.database or ''}"


async def resolve_target(target: str, sql: SQLModule) -> Endpoint:
    """The endpoint for `target`, or BadRequest (HTTP 400) when it is malformed or not allowed."""
    alias = sql.targets.get(target)
    if alias is not None:
        return _from_alias(target, alias, sql)
    if not target or any(c in _FORBIDDEN for c in target):
        raise BadRequest(f"invalid target {target!r}: give host[:port], a socket path or a configured alias")
    if sql.driver == "sqlite" or (sql.driver == "sqlalchemy" and _is_path(target)):
        return _file_target(target, sql)
    if target.startswith("unix://") or target.startswith("/"):
        return _socket_target(target, sql)
    host, port = _split_host_port(target, sql.port())
    endpoint = Endpoint(display=target, host=host, port=port, database=sql.database)
    return await _check_host(endpoint, sql)


def _is_path(target: str) -> bool:
    return target.startswith("/") or target.startswith("./") or target.endswith((".db", ".sqlite", ".sqlite3"))


def _from_alias(name: str, alias: TargetAlias, sql: SQLModule) -> Endpoint:
    port = alias.port or sql.port()
    if alias.host is not None:
        address = f"{alias.host}:{port}" if port else alias.host
        display = f"{name} ({address})"
    else:
        display = f"{name} ({alias.socket or alias.path or 'seeded demo database'})"
    return Endpoint(display=display, host=alias.host, port=port if alias.host else None, socket=alias.socket,
                    path=alias.path, seed_script=alias.seed_script, database=alias.database or sql.database)


def _file_target(target: str, sql: SQLModule) -> Endpoint:
    path = os.path.realpath(target.removeprefix("file:"))
    if not any(fnmatch.fnmatchcase(path, pattern) for pattern in sql.target_allow_paths):
        raise BadRequest(f"target {target!r} is not allowed by this module (target_allow_paths or an alias)")
    return Endpoint(display=target, path=path)


def _socket_target(target: str, sql: SQLModule) -> Endpoint:
    path = os.path.normpath(target.removeprefix("unix://"))
    if not any(fnmatch.fnmatchcase(path, pattern) for pattern in sql.target_allow_paths):
        raise BadRequest(f"target {target!r} is not allowed by this module (target_allow_paths)")
    return Endpoint(display=target, socket=path, port=sql.port(), database=sql.database)


def _split_host_port(target: str, default_port: int | None) -> tuple[str, int | None]:
    host, port_text = target, ""
    if target.startswith("["):
        end = target.find("]")
        if end < 0 or (end + 1 < len(target) and target[end + 1] != ":"):
            raise BadRequest(f"invalid target {target!r}")
        host, port_text = target[1:end], target[end + 2:]
    elif target.count(":") == 1:
        host, _, port_text = target.partition(":")
    elif target.count(":") > 1:
        try:
            ipaddress.IPv6Address(target)  # a bare IPv6 address, no port
        except ValueError:
            raise BadRequest(f"invalid target {target!r}: write IPv6 as [addr]:port") from None
    if "/" in host or not host:
        raise BadRequest(f"invalid target {target!r}: give host[:port]")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BadRequest(f"invalid port in target {target!r}")
    return host, int(port_text)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return False
    return True


async def _check_host(endpoint: Endpoint, sql: SQLModule) -> Endpoint:
    if not sql.target_allow:
        if sql.has_credentials():  # config validation prevents this; belt and braces
            raise BadRequest("this module has credentials but no target_allow")
        return endpoint
    assert endpoint.host is not None
    policy = sql.target_allow_policy()  # the allowed_targets model: CIDRs for IP literals, globs for names
    if policy.allows_host(endpoint.host, endpoint.port):
        return endpoint
    if not _is_ip(endpoint.host) and policy.has_networks:
        # A name is allowed when every address it resolves to is; we then dial the checked address,
        # so a second lookup cannot point somewhere else (DNS rebinding).
        addresses = await _resolve(endpoint.host)
        if addresses and all(policy.allows_address(a) for a in addresses):
            return replace(endpoint, connect_address=addresses[0])
    raise BadRequest(f"target {endpoint.display!r} is not allowed by this module (target_allow)")


async def _resolve(host: str) -> list[str]:
    try:
        async with asyncio.timeout(2.0):
            return await resolve_addresses(host)
    except (ResolveError, TimeoutError):
        return []

"""Lookup tables kept across scrapes (--snmp.lookup-cache, a module's `lookup_cache`).

A module that labels its metrics by ifAlias/ifDescr/ifName spends most of its PDUs walking those
columns, which change only when the device does. With a maximum age set, the walks that feed only
lookups (no metric OID overlaps them, plan.lookup_only) are served from here per (target, auth,
context). One GET of sysUpTime.0 per scrape guards them: an uptime that went backwards (a reboot, or
the 497-day wrap) or changed SNMPv3 engine boots drops the target's tables at once. Memory is
bounded: at most `size` (target, auth, context) entries, the least recently used forgotten first.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from probe_exporter.config.snmp import SnmpAuth
from probe_exporter.probers.snmp import stats
from probe_exporter.probers.snmp.values import END_OF_MIB, NO_SUCH, Value

OidValue = tuple[tuple[int, ...], Value]
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
DEFAULT_SIZE = 10_000


@dataclass
class TargetTables:
    """One (target, auth, context): its lookup walks and the agent's clock when they were taken."""

    uptime: int
    boots: int | None
    walks: dict[tuple[int, ...], tuple[float, list[OidValue]]] = field(default_factory=dict)


class LookupCache:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[Any, ...], TargetTables] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def tables(self, key: tuple[Any, ...], uptime: int, boots: int | None) -> TargetTables:
        """The target's tables, emptied when the agent restarted since they were taken."""
        entries = self._entries
        tables = entries.pop(key, None)
        if tables is None or uptime < tables.uptime or (boots is not None and boots != tables.boots):
            tables = TargetTables(uptime, boots)
        tables.uptime, tables.boots = uptime, boots
        entries[key] = tables  # most recently used last
        while len(entries) > self.size:
            del entries[next(iter(entries))]
        return tables


_CACHE = LookupCache()


def shared_cache(size: int) -> LookupCache:
    """The process-wide cache, resized to --snmp.lookup-cache-size."""
    _CACHE.size = size
    return _CACHE


def auth_key(auth: SnmpAuth, context: str | None, engine_id: bytes | None) -> tuple[Any, ...]:
    """What the agent answers differently for; the credentials only as a digest."""
    secret = "\0".join((auth.community.reveal(), auth.password.reveal(), auth.priv_password.reveal()))
    digest = hashlib.blake2b(secret.encode(), digest_size=16).digest()
    return (auth.version, auth.username, auth.security_level, auth.auth_protocol, auth.priv_protocol, digest,
            auth.context_name if context is None else context, engine_id)


def uptime_of(varbinds: list[OidValue]) -> int | None:
    for oid, value in varbinds:
        if oid == SYS_UPTIME and value[0] not in (NO_SUCH, END_OF_MIB) and isinstance(value[1], int):
            return value[1]
    return None


class ScrapeTables:
    """One module's scrape against the cache: `take` a lookup walk or `keep` the one just walked."""

    def __init__(self, cache: LookupCache, key: tuple[Any, ...], max_age: float, module: str) -> None:
        self.cache = cache
        self.key = key
        self.max_age = max_age
        self.module = module
        self.tables: TargetTables | None = None  # None: no usable sysUpTime, nothing is cached

    def guard(self, uptime: int | None, boots: int | None) -> None:
        if uptime is not None:
            self.tables = self.cache.tables(self.key, uptime, boots)

    def take(self, root: tuple[int, ...]) -> list[OidValue] | None:
        entry = self.tables.walks.get(root) if self.tables is not None else None
        if entry is not None and time.monotonic() - entry[0] <= self.max_age:
            stats.STATS.lookup_cache_hits.labels(self.module).inc()
            return entry[1]
        stats.STATS.lookup_cache_misses.labels(self.module).inc()
        return None

    def keep(self, root: tuple[int, ...], pdus: list[OidValue]) -> None:
        if self.tables is not None:
            self.tables.walks[root] = (time.monotonic(), pdus)

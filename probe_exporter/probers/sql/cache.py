"""`min_interval` caching of a collector's results per (module, target, collector).

Like sql_exporter, the cache holds a collector's finished samples, never errors. One probe at a time
runs a given collector for a key (single flight): the others wait for it, within their deadlines,
and then read its result. Targets come from URLs, so the number of keys is bounded (LRU).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from probe_exporter.probers.sql.rows import SampleData

CacheKey = tuple[str, str, str]  # (module, target, collector)


@dataclass
class QueryStat:
    collector: str
    query: str
    success: bool
    duration: float
    rows: int


@dataclass
class CollectorResult:
    collector: str
    samples: list[SampleData] = field(default_factory=list)
    queries: list[QueryStat] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)

    @property
    def success(self) -> bool:
        return all(q.success for q in self.queries)


class CollectorCache:
    def __init__(self) -> None:
        self._entries: OrderedDict[CacheKey, CollectorResult] = OrderedDict()
        self._flights: dict[CacheKey, tuple[asyncio.Lock, int]] = {}

    def get(self, key: CacheKey, max_age: float) -> CollectorResult | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if time.monotonic() - entry.created >= max_age:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: CacheKey, result: CollectorResult, max_keys: int) -> None:
        if not result.success:
            return  # errors are never cached: the next probe tries again
        self._entries[key] = result
        self._entries.move_to_end(key)
        while len(self._entries) > max_keys:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def flight(self, key: CacheKey) -> AsyncIterator[None]:
        """Run the body as the only flight for `key`; waiting is bounded by the caller's timeout."""
        lock, users = self._flights.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._flights[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._flights[key]
            if users <= 1:
                del self._flights[key]
            else:
                self._flights[key] = (lock, users - 1)

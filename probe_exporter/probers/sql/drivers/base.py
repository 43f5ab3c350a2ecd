"""What every SQL driver adapter offers the executor, and the worker pool the blocking ones share."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False  # more rows than max_rows: the extra ones were not read


class QueryTimeout(Exception):
    """The query ran out of its budget; the adapter has already stopped it on the server."""


class Connection(Protocol):
    # True once the connection cannot run another query (it timed out mid-query, or dropped).
    broken: bool

    async def query(self, sql: str, timeout: float, max_rows: int) -> QueryResult:
        """Run one statement within `timeout` seconds; raise QueryTimeout when it does not finish."""
        ...

    async def close(self) -> None:
        """Close without waiting long (bounded by the adapter)."""
        ...


class WorkerPool:
    """A small thread pool for a synchronous driver, started on first use and stopped at shutdown."""

    def __init__(self, name: str, size: int = 8) -> None:
        self._name = name
        self._size = size
        self._executor: ThreadPoolExecutor | None = None

    def get(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self._size, thread_name_prefix=self._name)
        return self._executor

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

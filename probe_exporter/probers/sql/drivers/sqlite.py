"""SQLite through the standard library, in a small dedicated thread pool, read-only.

A Python thread cannot be killed, so the deadline is enforced inside SQLite: a progress handler
interrupts the statement when its time is up, and a cancelled probe calls interrupt() too. The file
is opened with `mode=ro` (never created) and an authorizer that allows reading only (no ATTACH).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from urllib.parse import quote

from probe_exporter.probers.sql.drivers.base import QueryResult, QueryTimeout, WorkerPool
from probe_exporter.probers.sql.spec import ConnectSpec

POOL = WorkerPool("probe-sqlite")

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                    getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


def _read_only(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg2 is None:  # reading a pragma, not setting one
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def open_read_only(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, check_same_thread=False,
                           timeout=0.5, isolation_level=None)
    conn.set_authorizer(_read_only)
    return conn


class SQLiteConnection:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.broken = False

    def _run(self, sql: str, max_rows: int, deadline: float) -> QueryResult:
        # Checked every 1000 VM instructions: stops a runaway statement close to its deadline.
        self._conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
        cursor = self._conn.execute(sql)
        try:
            columns = [d[0] for d in cursor.description] if cursor.description else []
            rows = cursor.fetchmany(max_rows + 1)
        finally:
            cursor.close()
        return QueryResult(columns, [tuple(r) for r in rows[:max_rows]], len(rows) > max_rows)

    async def query(self, sql: str, timeout: float, max_rows: int) -> QueryResult:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(POOL.get(), self._run, sql, max_rows, time.monotonic() + timeout)
        try:
            return await asyncio.shield(future)
        except sqlite3.OperationalError as err:
            if str(err) == "interrupted":
                raise QueryTimeout(f"query did not finish within {timeout:.3f}s (interrupted)") from None
            raise
        except asyncio.CancelledError:
            # The probe's own deadline: stop the statement now so the worker thread is freed.
            self._conn.interrupt()
            self.broken = True
            raise

    async def close(self) -> None:
        if self.broken:
            # A statement may still be unwinding after interrupt(); close in the pool behind it.
            POOL.get().submit(self._conn.close)
            return
        await asyncio.get_running_loop().run_in_executor(POOL.get(), self._conn.close)


async def connect(spec: ConnectSpec, timeout: float) -> SQLiteConnection:
    if not spec.path:
        raise ValueError("no SQLite database file for this target")
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        conn = await loop.run_in_executor(POOL.get(), open_read_only, spec.path)
    return SQLiteConnection(conn)

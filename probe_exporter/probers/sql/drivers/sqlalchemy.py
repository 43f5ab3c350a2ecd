"""Any other database through SQLAlchemy (optional extra: pip install probe-exporter[sqlalchemy]).

SQLAlchemy is synchronous here, in its own bounded thread pool (the query-exporter model). A thread
cannot be killed: on a timeout we ask the DB-API connection to stop (sqlite3 interrupt(), psycopg
cancel()) and invalidate it; drivers without either keep their worker until their socket timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

from probe_exporter.extras import required
from probe_exporter.probers.sql.drivers.base import QueryResult, QueryTimeout, WorkerPool
from probe_exporter.probers.sql.drivers.sqlite import open_read_only
from probe_exporter.probers.sql.spec import ConnectSpec

POOL = WorkerPool("probe-sqlalchemy")
# DB-APIs known to take `connect_timeout` (seconds): psycopg/psycopg2, pymysql/mysqlclient.
_CONNECT_TIMEOUT_BACKENDS = ("postgresql", "mysql", "mariadb")
_STOP_WAIT = 0.1


def _engine(spec: ConnectSpec, timeout: float) -> Any:
    with required("sqlalchemy"):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool
    url = make_url(spec.url or "")
    if spec.username is not None:
        url = url.set(username=spec.username)
    if spec.password is not None:
        url = url.set(password=spec.password.reveal())
    backend = url.get_backend_name()
    if backend == "sqlite":
        # The native driver's read-only opener (mode=ro, never created, no ATTACH); the deadline is
        # enforced inside SQLite by the progress handler _run sets.
        path = (url.database or "").removeprefix("file:")
        return create_engine("sqlite://", poolclass=NullPool, creator=lambda: open_read_only(path))
    connect_args: dict[str, Any] = {}
    if backend in _CONNECT_TIMEOUT_BACKENDS:
        # The worker thread cannot be stopped: the DB-API's own limit frees it from a hung handshake.
        connect_args["connect_timeout"] = max(2, math.ceil(timeout))
    return create_engine(url, poolclass=NullPool, connect_args=connect_args)


class SQLAlchemyConnection:
    def __init__(self, engine: Any, conn: Any) -> None:
        self._engine = engine
        self._conn = conn
        self.broken = False

    def _dbapi(self) -> Any:
        return self._conn.connection.dbapi_connection

    def _run(self, sql: str, max_rows: int, deadline: float) -> QueryResult:
        dbapi = self._dbapi()
        if hasattr(dbapi, "set_progress_handler"):
            dbapi.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
        result = self._conn.exec_driver_sql(sql)
        try:
            columns = list(result.keys()) if result.returns_rows else []
            rows = result.fetchmany(max_rows + 1) if result.returns_rows else []
        finally:
            result.close()
        return QueryResult(columns, [tuple(r) for r in rows[:max_rows]], len(rows) > max_rows)

    def _stop(self) -> None:
        """Ask the DB-API connection to stop its statement (psycopg's cancel() dials the server, so
        this runs on the default thread pool, never on the event loop)."""
        dbapi = self._dbapi()
        for method in ("interrupt", "cancel"):
            stop = getattr(dbapi, method, None)
            if stop is not None:
                try:
                    stop()
                except Exception:  # best effort: the connection is invalidated anyway
                    pass
                return

    async def query(self, sql: str, timeout: float, max_rows: int) -> QueryResult:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(POOL.get(), self._run, sql, max_rows, time.monotonic() + timeout)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            self._stop_later(loop)
            # The statement ends once the server has the cancel: wait for that a moment (the probe's
            # deadline keeps a reserve for it), so a probe that answers has left nothing running.
            await asyncio.wait([future], timeout=_STOP_WAIT)
            raise QueryTimeout(f"query did not finish within {timeout:.3f}s (cancel requested)") from None
        except asyncio.CancelledError:
            self._stop_later(loop)
            raise
        except Exception as err:
            if "interrupted" in str(err):
                raise QueryTimeout(f"query did not finish within {timeout:.3f}s (interrupted)") from None
            raise

    def _stop_later(self, loop: asyncio.AbstractEventLoop) -> None:
        self.broken = True
        with contextlib.suppress(RuntimeError):  # the default pool is gone at shutdown: nothing to stop for
            loop.run_in_executor(None, self._stop)

    def _close(self) -> None:
        try:
            if self.broken:
                self._conn.invalidate()
            self._conn.close()
        finally:
            self._engine.dispose()

    async def close(self) -> None:
        future = asyncio.get_running_loop().run_in_executor(POOL.get(), self._close)
        if not self.broken:
            try:
                async with asyncio.timeout(1.0):
                    await asyncio.shield(future)
            except TimeoutError:
                pass


def _open(spec: ConnectSpec, timeout: float) -> SQLAlchemyConnection:
    engine = _engine(spec, timeout)
    try:
        conn = engine.connect()
    except BaseException:
        engine.dispose()
        raise
    return SQLAlchemyConnection(engine, conn)


async def connect(spec: ConnectSpec, timeout: float) -> SQLAlchemyConnection:
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(POOL.get(), _open, spec, timeout)
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.shield(future)
    except (TimeoutError, asyncio.CancelledError):
        # The connect finishes in its thread later: close what it makes instead of leaking it.
        future.add_done_callback(_close_late)
        raise


def _close_late(future: asyncio.Future[SQLAlchemyConnection]) -> None:
    if not future.cancelled() and future.exception() is None:
        conn = future.result()
        conn.broken = True
        POOL.get().submit(conn._close)

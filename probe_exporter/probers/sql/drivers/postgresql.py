"""PostgreSQL through psycopg 3 (async). A cancelled task makes psycopg send a CancelRequest, so a
query that runs out of budget stops on the server too; statement_timeout is the server-side backstop."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from probe_exporter.extras import required
from probe_exporter.probers.sql.drivers.base import QueryResult, QueryTimeout
from probe_exporter.probers.sql.spec import APPLICATION_NAME, ConnectSpec

with required("postgresql"):
    import psycopg
    from psycopg import pq


def _option_value(value: str) -> str:
    # libpq `options`: backslash escapes spaces and backslashes inside one -c argument.
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def _connect_kwargs(spec: ConnectSpec, timeout: float) -> dict[str, Any]:
    settings = dict(spec.session)
    if spec.statement_timeout > 0:
        millis = str(max(1, math.ceil(spec.statement_timeout * 1000)))
        settings.setdefault("statement_timeout", millis)
        settings.setdefault("lock_timeout", millis)
    options = dict(spec.options)
    extra = options.pop("options", "")
    command_line = " ".join(f"-c {_option_value(k)}={_option_value(v)}" for k, v in settings.items())
    kwargs: dict[str, Any] = {
        "dbname": spec.database or "postgres",
        "application_name": APPLICATION_NAME,
        # libpq's own limit is a fallback (its minimum is 2 s); asyncio.timeout is the real bound.
        "connect_timeout": max(2, math.ceil(timeout)),
        **options,
        "options": f"{extra} {command_line}".strip(),
        "autocommit": True,
    }
    if spec.socket:
        directory, _, name = spec.socket.rpartition("/.s.PGSQL.")
        kwargs["host"] = directory if name else spec.socket
        if name.isdigit():
            kwargs["port"] = int(name)
        elif spec.port:
            kwargs["port"] = spec.port
    else:
        kwargs["host"] = spec.host
        kwargs["port"] = spec.port or 5432
        if spec.connect_address:
            kwargs["hostaddr"] = spec.connect_address
    if spec.username:
        kwargs["user"] = spec.username
    if spec.password is not None:
        kwargs["password"] = spec.password.reveal()
    # Never server-side prepared statements: each query runs once per connection anyway, and poolers
    # in transaction mode (PgBouncer; sql_exporter's no_prepared_statement) cannot follow them.
    kwargs["prepare_threshold"] = None
    return kwargs


class PostgresConnection:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn
        self.broken = False

    async def query(self, sql: str, timeout: float, max_rows: int) -> QueryResult:
        rows: list[tuple[Any, ...]] = []
        columns: list[str] = []
        truncated = False
        cursor = self._conn.cursor()
        try:
            async with asyncio.timeout(timeout):
                # stream() reads row by row, so a huge result costs max_rows rows of memory; leaving
                # the loop early makes psycopg cancel the rest on the server.
                stream = cursor.stream(sql)
                try:
                    async for row in stream:
                        if not rows and cursor.description:
                            columns = [d.name for d in cursor.description]
                        if len(rows) >= max_rows:
                            truncated = True
                            break
                        rows.append(tuple(row))
                finally:
                    await stream.aclose()  # type: ignore[attr-defined]
        except TimeoutError:
            self._check_idle()
            raise QueryTimeout(f"query did not finish within {timeout:.3f}s (cancelled on the server)") from None
        except psycopg.OperationalError:
            self._check_idle()
            raise
        await cursor.close()
        return QueryResult(columns, rows, truncated)

    def _check_idle(self) -> None:
        if self._conn.closed or self._conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            self.broken = True

    async def close(self) -> None:
        try:
            async with asyncio.timeout(1.0):
                await self._conn.close()
        except (TimeoutError, psycopg.Error, OSError):
            self._conn.pgconn.finish()


async def connect(spec: ConnectSpec, timeout: float) -> PostgresConnection:
    async with asyncio.timeout(timeout):
        conn = await psycopg.AsyncConnection.connect(**_connect_kwargs(spec, timeout))
    return PostgresConnection(conn)

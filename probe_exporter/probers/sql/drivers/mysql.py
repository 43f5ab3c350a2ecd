"""MariaDB and MySQL through aiomysql, with the guards that driver needs.

aiomysql only gives up on the client side: on a timeout the query keeps running on the server and
the connection becomes unusable. So every connect sits in asyncio.timeout (its connect_timeout does
not cover the handshake), the session gets max_statement_time (MariaDB) / max_execution_time (MySQL,
SELECT only), and a query that runs out of budget is stopped with KILL QUERY from a side connection.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from typing import Any

from probe_exporter.extras import required
from probe_exporter.modulecache import CacheKey
from probe_exporter.probers.sql.drivers.base import QueryResult, QueryTimeout
from probe_exporter.probers.sql.spec import ConnectSpec

with required("mysql"):
    import aiomysql
    import pymysql

_SSL_KEYS = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_verify")
_KILL_CONNECT_TIMEOUT = 1.0


def _ssl_context(spec: ConnectSpec) -> ssl.SSLContext | None:
    """The TLS context for the spec's ssl_* options, built once per module (it reads the CA files)."""
    settings = tuple((key, spec.options[key]) for key in _SSL_KEYS if key in spec.options)
    if not settings:
        return None
    context: ssl.SSLContext = spec.cached(CacheKey[ssl.SSLContext](f"sql.mysql.ssl:{settings}"),
                                          lambda: _build_ssl_context(dict(settings)))
    return context


def _build_ssl_context(options: dict[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.get("ssl_ca"))
    if options.get("ssl_cert"):
        context.load_cert_chain(options["ssl_cert"], options.get("ssl_key"))
    if options.get("ssl_verify", "true").lower() in ("false", "0", "no"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _connect_kwargs(spec: ConnectSpec, timeout: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "user": spec.username or "root",
        "password": spec.password.reveal() if spec.password is not None else "",
        "db": spec.database,
        "connect_timeout": max(1, math.ceil(timeout)),
        "autocommit": True,
        "charset": spec.options.get("charset", "utf8mb4"),
        "ssl": _ssl_context(spec),
        "program_name": "probe_exporter",
    }
    if spec.socket:
        kwargs["unix_socket"] = spec.socket
    else:
        kwargs["host"] = spec.connect_address or spec.host
        kwargs["port"] = spec.port or 3306
    return kwargs


async def _open(spec: ConnectSpec, timeout: float) -> aiomysql.Connection:
    async with asyncio.timeout(timeout):
        return await aiomysql.connect(**_connect_kwargs(spec, timeout))


class MySQLConnection:
    def __init__(self, conn: aiomysql.Connection, spec: ConnectSpec) -> None:
        self._conn = conn
        self._spec = spec
        self.broken = False

    async def query(self, sql: str, timeout: float, max_rows: int) -> QueryResult:
        cursor = await self._conn.cursor(aiomysql.SSCursor)  # unbuffered: rows are read as fetched
        try:
            async with asyncio.timeout(timeout):
                await cursor.execute(sql)
                columns = [d[0] for d in cursor.description] if cursor.description else []
                rows = list(await cursor.fetchmany(max_rows + 1))
                truncated = len(rows) > max_rows
                # Closing an unbuffered cursor reads out the rest; the budget still bounds it.
                await cursor.close()
        except TimeoutError:
            self.broken = True
            await self._kill_query()
            raise QueryTimeout(f"query did not finish within {timeout:.3f}s (KILL QUERY sent)") from None
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as err:
            # 2006/2013: the server went away mid-query; 1969/3024: the server-side time limit.
            if err.args and err.args[0] not in (1969, 3024):
                self.broken = True
            raise
        return QueryResult(columns, [tuple(r) for r in rows[:max_rows]], truncated)

    async def _kill_query(self) -> None:
        """Stop our statement on the server: a client-side timeout leaves it running there."""
        thread_id = int(self._conn.thread_id())
        self._conn.close()
        try:
            side = await _open(self._spec, _KILL_CONNECT_TIMEOUT)
        except (TimeoutError, pymysql.err.MySQLError, OSError):
            return  # max_statement_time stops it on MariaDB; nothing else we can do
        try:
            async with asyncio.timeout(_KILL_CONNECT_TIMEOUT):
                async with side.cursor() as cursor:
                    await cursor.execute(f"KILL QUERY {thread_id:d}")
        except (TimeoutError, pymysql.err.MySQLError, OSError):
            pass
        finally:
            side.close()

    async def close(self) -> None:
        if self.broken:
            self._conn.close()
            return
        try:
            async with asyncio.timeout(0.5):
                await self._conn.ensure_closed()
        except (TimeoutError, pymysql.err.MySQLError, OSError):
            self._conn.close()


async def connect(spec: ConnectSpec, timeout: float) -> MySQLConnection:
    loop = asyncio.get_running_loop()
    started = loop.time()
    conn = await _open(spec, timeout)
    try:
        server = conn.get_server_info() or ""
        flavor = "mariadb" if "mariadb" in server.lower() else "mysql"
        settings = _session_settings(spec, flavor)
        if settings:
            async with asyncio.timeout(max(0.001, timeout - (loop.time() - started))):
                async with conn.cursor() as cursor:
                    await cursor.execute("SET " + ", ".join(f"SESSION {k} = {v}" for k, v in settings.items()))
    except BaseException:
        conn.close()
        raise
    return MySQLConnection(conn, spec)


def _session_settings(spec: ConnectSpec, flavor: str) -> dict[str, str]:
    settings: dict[str, str] = {}
    if spec.statement_timeout > 0:
        if flavor == "mariadb":
            settings["max_statement_time"] = f"{spec.statement_timeout:.3f}"
        else:
            settings["max_execution_time"] = str(max(1, math.ceil(spec.statement_timeout * 1000)))
        # Lock waits are whole seconds; they bound a DDL/lock wait the statement limit may not cover.
        lock_wait = str(max(1, math.ceil(spec.statement_timeout)))
        settings["lock_wait_timeout"] = lock_wait
        settings["innodb_lock_wait_timeout"] = lock_wait
    for key, value in spec.session.items():
        if not key.replace("_", "").isalnum():
            continue  # config validation rejects these; never build SQL from them
        is_number = value.replace(".", "", 1).isdigit()
        settings[key] = value if is_number else "'" + pymysql.converters.escape_string(value) + "'"
    return settings

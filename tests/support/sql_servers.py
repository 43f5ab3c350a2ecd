"""The real PostgreSQL and MariaDB servers the SQL tests use, and what differs between the two.

PostgreSQL (127.0.0.1:5432, trust auth, database `test`) and MariaDB (127.0.0.1:3306, root without
password, database `test`) are local servers. In CI (CI=true) their absence fails the tests; elsewhere
the tests skip with a message saying how to start them.

A `Dialect` holds one server's side of the tests both servers share: its module block, an admin
connection, how to find (and kill) our running queries, its sleep and lock statements, and the error
texts it gives.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomysql
import psycopg
import pytest

PG_ADDRESS = ("127.0.0.1", 5432)
MARIADB_ADDRESS = ("127.0.0.1", 3306)
# The sql: block of a module on each local server (indented for write_config).
PG_BLOCK = """      driver: postgresql
      database: test
      auth: {username: postgres}
      target_allow: [127.0.0.1]
"""
MARIADB_BLOCK = """      driver: mysql
      database: test
      auth: {username: root}
      target_allow: [127.0.0.1]
"""
START_HINT = ("start the local servers with `CI=true bash .ci/run` (or: pg_ctlcluster --skip-systemctl-redirect "
              "$(ls /etc/postgresql) main start; start-stop-daemon --start --oknodo --background "
              "--exec /usr/sbin/mariadbd)")


def _reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1.0):
            return True
    except OSError:
        return False


def require_server(address: tuple[str, int], name: str) -> None:
    """Skip (fail in CI) unless a server listens at `address`."""
    if _reachable(address):
        return
    message = f"{name} is not reachable at {address[0]}:{address[1]}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: .ci/run should have started it")
    pytest.skip(f"{message}; {START_HINT}")


class Admin:
    """A side connection to a server, to watch and disturb what the exporter runs there."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self.conn.cursor() as cursor:
            await cursor.execute(sql, args or None)
            return list(await cursor.fetchall()) if cursor.description else []

    async def close(self) -> None:
        closed = self.conn.close()  # psycopg's is a coroutine, aiomysql's is not
        if closed is not None:
            await closed


@dataclass(frozen=True)
class FailedLogin:
    """Credentials the server refuses: the auth mapping for the block, the secrets that must never show,
    and what the debug page says about the refusal."""

    auth: str
    secrets: tuple[str, ...]
    shown: tuple[str, ...]


@dataclass(frozen=True)
class Dialect:
    name: str
    address: tuple[str, int]
    block: str
    auth: str  # the block's auth mapping, replaced by the login tests
    socket: Path  # where the server listens on a unix socket by default
    # One query per row for each running query of ours, with its server id; %s is a LIKE pattern.
    ours_sql: str
    kill_sql: str  # {id}: end that server connection
    sleep_sql: str  # {seconds}
    lock_sql: str  # {table}: lock it until unlock_sql (or the end of the holder's transaction)
    unlock_sql: str | None
    lock_holder_autocommit: bool
    # The server-side limits the session gets from query_timeout, read back with one query each.
    statement_limit_sql: str
    lock_limit_sql: str
    lock_limit_for_1500ms: float
    unknown_database_errors: tuple[str, ...]  # any of these on the debug page
    deadline_error: str
    syntax_error: str

    def tagged(self, sql: str, tag: str) -> str:
        """`sql` with a comment carrying `tag`, so the server's activity list finds this test's queries."""
        return f"{sql} /* {tag} */"

    def sleep(self, seconds: float, tag: str) -> str:
        return self.tagged(self.sleep_sql.format(seconds=seconds), tag)

    async def connect(self, autocommit: bool = True) -> Admin:
        host, port = self.address
        if self.name == "postgresql":
            return Admin(await psycopg.AsyncConnection.connect(host=host, port=port, dbname="test", user="postgres",
                                                               autocommit=autocommit))
        return Admin(await aiomysql.connect(host=host, port=port, user="root", password="", db="test",
                                            autocommit=autocommit))

    async def running(self, admin: Admin, tag: str) -> int:
        return len(await admin.fetch(self.ours_sql, f"%{tag}%"))

    async def kill(self, admin: Admin, tag: str) -> None:
        for (server_id, *_) in await admin.fetch(self.ours_sql, f"%{tag}%"):
            await admin.fetch(self.kill_sql.format(id=int(server_id)))

    @asynccontextmanager
    async def table_locked(self, table: str) -> AsyncIterator[None]:
        holder = await self.connect(autocommit=self.lock_holder_autocommit)
        try:
            await holder.fetch(self.lock_sql.format(table=table))
            yield
        finally:
            if self.unlock_sql:
                await holder.fetch(self.unlock_sql)
            await holder.close()

    @asynccontextmanager
    async def failed_login(self, admin: Admin, tmp_path: Path) -> AsyncIterator[FailedLogin]:
        if self.name == "postgresql":
            # pg_hba here is `trust` for 127.0.0.1, so a wrong password cannot fail; an unknown role does,
            # with the password sent all the same. (A real wrong password is tested against MariaDB.)
            password = f"pw-{uuid.uuid4().hex}"
            yield FailedLogin(f"{{username: no_such_role, password: {password}}}", (password,),
                              ("no_such_role",))
            return
        async with mariadb_user(admin) as (user, right_password):
            wrong = f"wrong-{uuid.uuid4().hex}"
            password_file = tmp_path / "pw"
            password_file.write_text(wrong + "\n")
            yield FailedLogin(f"{{username: {user}, password_file: {password_file}}}", (wrong, right_password),
                              ("Access denied", "using password: YES"))


@asynccontextmanager
async def mariadb_user(admin: Admin) -> AsyncIterator[tuple[str, str]]:
    """A MariaDB user allowed to read `test` from 127.0.0.1, as (name, password); dropped afterwards."""
    user = f"probe_{uuid.uuid4().hex[:8]}"
    password = "right-password-1"
    await admin.fetch(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
    await admin.fetch(f"GRANT SELECT ON test.* TO '{user}'@'127.0.0.1'")
    try:
        yield user, password
    finally:
        await admin.fetch(f"DROP USER '{user}'@'127.0.0.1'")


POSTGRESQL = Dialect(
    name="postgresql", address=PG_ADDRESS, block=PG_BLOCK, auth="{username: postgres}",
    socket=Path("/var/run/postgresql/.s.PGSQL.5432"),
    ours_sql="SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
    kill_sql="SELECT pg_terminate_backend({id})",
    sleep_sql="SELECT pg_sleep({seconds}) AS n",
    lock_sql="LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE", unlock_sql=None, lock_holder_autocommit=False,
    statement_limit_sql="SELECT extract(epoch FROM current_setting('statement_timeout')::interval) AS n",
    lock_limit_sql="SELECT extract(epoch FROM current_setting('lock_timeout')::interval) AS n",
    lock_limit_for_1500ms=1.5,
    unknown_database_errors=('database \\"no_such_db\\" does not exist', 'database "no_such_db" does not exist'),
    deadline_error="Query timed out",
    syntax_error="SyntaxError",
)
MARIADB = Dialect(
    name="mariadb", address=MARIADB_ADDRESS, block=MARIADB_BLOCK, auth="{username: root}",
    socket=Path("/run/mysqld/mysqld.sock"),
    ours_sql="SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
    kill_sql="KILL {id}",
    sleep_sql="SELECT SLEEP({seconds}) AS n",
    lock_sql="LOCK TABLES {table} WRITE", unlock_sql="UNLOCK TABLES", lock_holder_autocommit=True,
    statement_limit_sql="SELECT @@SESSION.max_statement_time AS n",
    lock_limit_sql="SELECT @@SESSION.lock_wait_timeout AS n",
    lock_limit_for_1500ms=2,  # whole seconds, rounded up
    unknown_database_errors=("Unknown database",),
    deadline_error="KILL QUERY sent",
    syntax_error="You have an error in your SQL syntax",
)
DIALECTS = (POSTGRESQL, MARIADB)

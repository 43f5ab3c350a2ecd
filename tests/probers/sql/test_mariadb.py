"""MariaDB (aiomysql) against the real local server: happy path, bad input and faults.

aiomysql gives up on the client side only, so these tests check the guards: a query past its
budget is gone from the processlist afterwards (KILL QUERY from a side connection), a hung server
cannot hold the connect, and a wrong password never shows anywhere.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomysql
import pytest

from .conftest import (
    MARIADB_BLOCK,
    REPO,
    assert_inside_deadline,
    exporter_for,
    gauge,
    metric_lines,
    value,
    write_config,
)

pytestmark = pytest.mark.usefixtures("mariadb")

BLOCK = MARIADB_BLOCK


@pytest.fixture()
async def admin() -> AsyncIterator[aiomysql.Connection]:
    conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="", db="test",
                                  autocommit=True)
    yield conn
    conn.close()


async def fetch(conn: aiomysql.Connection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with conn.cursor() as cursor:
        await cursor.execute(sql, args or None)
        return list(await cursor.fetchall())


async def running(conn: aiomysql.Connection, tag: str) -> int:
    rows = await fetch(conn, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s "
                             "AND ID <> CONNECTION_ID()", f"%{tag}%")
    return int(rows[0][0])


async def _wait_running(admin: aiomysql.Connection, tag: str) -> bool:
    for _ in range(100):
        if await running(admin, tag):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_shipped_module() -> None:
    async with exporter_for(REPO / "modules" / "sql.yml") as exporter:
        text = (await exporter.probe("mariadb", "127.0.0.1:3306")).text
    assert value(text, "probe_success") == 1, text
    assert value(text, "mysql_max_connections") > 0
    assert "MariaDB" in metric_lines(text, "mysql_version_info")[0]
    assert value(text, 'mysql_global_status_threads{state="connected"}') >= 1
    assert "# TYPE mysql_slow_queries counter" in text
    assert metric_lines(text, "mysql_slave_lag_seconds") == []  # not a replica: no row, no sample


async def test_values_nulls_and_types(tmp_path: Path) -> None:
    query = ("SELECT 'a' AS k, CAST(1.25 AS DECIMAL(5,2)) AS n UNION ALL SELECT NULL, 2 "
             "UNION ALL SELECT 'c', NULL UNION ALL SELECT 'd', TRUE")
    config = write_config(tmp_path, BLOCK, gauge("num", query, keys="[k]"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1")).text
    assert value(text, 'num{k="a"}') == 1.25 and value(text, 'num{k=""}') == 2 and value(text, 'num{k="d"}') == 1
    assert 'num{k="c"}' not in text


async def test_wrong_password_never_shows(tmp_path: Path, admin: aiomysql.Connection,
                                          captured_logs: list[str]) -> None:
    user = f"probe_{uuid.uuid4().hex[:8]}"
    wrong = f"wrong-{uuid.uuid4().hex}"
    await fetch(admin, f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'right-password-1'")
    await fetch(admin, f"GRANT SELECT ON test.* TO '{user}'@'127.0.0.1'")
    try:
        password_file = tmp_path / "pw"
        password_file.write_text(wrong + "\n")
        block = BLOCK.replace("{username: root}", f"{{username: {user}, password_file: {password_file}}}")
        config = write_config(tmp_path, block, gauge("one", "SELECT 1 AS n"))
        async with exporter_for(config) as exporter:
            debug = (await exporter.probe("m", "127.0.0.1", debug="true")).text
            page = (await exporter.probe("m", "127.0.0.1")).text
            config_page = (await exporter.http.get("/config")).text
            # rotated on disk: the next probe reads the new password, no reload needed
            password_file.write_text("right-password-1\n")
            rotated = (await exporter.probe("m", "127.0.0.1")).text
        assert value(page, "probe_success") == 0
        assert "Access denied" in debug and "using password: YES" in debug
        for text in (debug, page, config_page, "\n".join(captured_logs)):
            assert wrong not in text and "right-password-1" not in text
        assert value(rotated, "probe_success") == 1
    finally:
        await fetch(admin, f"DROP USER '{user}'@'127.0.0.1'")


async def test_unknown_database(tmp_path: Path) -> None:
    config = write_config(tmp_path, BLOCK.replace("database: test", "database: no_such_db"),
                          gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1", debug="true")).text
    assert value(text, "probe_success") == 0 and "Unknown database" in text


async def test_target_outside_the_allowlist_is_400(tmp_path: Path) -> None:
    config = write_config(tmp_path, BLOCK, gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        assert (await exporter.probe("m", "192.0.2.1:3306")).status_code == 400
        assert (await exporter.probe("m", "root@127.0.0.1")).status_code == 400


async def test_query_past_the_deadline_is_killed_on_the_server(tmp_path: Path, admin: aiomysql.Connection) -> None:
    tag = uuid.uuid4().hex
    config = write_config(tmp_path, BLOCK, gauge("slow", f"SELECT SLEEP(10) AS n /* {tag} */"),
                          timeout="1s")
    async with exporter_for(config) as exporter:
        started = time.monotonic()
        text = (await exporter.probe("m", "127.0.0.1", debug="true")).text
        assert_inside_deadline(text, started, 1.0)
    assert value(text, "probe_success") == 0 and "KILL QUERY sent" in text
    assert await running(admin, tag) == 0


async def test_query_timeout_then_next_query_on_a_new_connection(tmp_path: Path,
                                                                 admin: aiomysql.Connection) -> None:
    tag = uuid.uuid4().hex
    config = write_config(tmp_path, BLOCK + "      query_timeout: 300ms\n",
                          gauge("slow", f"SELECT SLEEP(10) AS n /* {tag} */") + gauge("after", "SELECT 5 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1")).text
    assert value(text, 'probe_sql_query_success{collector="app",query="slow"}') == 0
    assert value(text, "after") == 5
    assert await running(admin, tag) == 0


async def test_server_side_statement_limit_is_set(tmp_path: Path) -> None:
    # The backstop when even KILL QUERY cannot get through: the session's own max_statement_time.
    config = write_config(tmp_path, BLOCK + "      query_timeout: 1500ms\n",
                          gauge("limit", "SELECT @@SESSION.max_statement_time AS n")
                          + gauge("lockwait", "SELECT @@SESSION.lock_wait_timeout AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1")).text
    assert value(text, "limit") == 1.5 and value(text, "lockwait") == 2


async def test_lock_wait(tmp_path: Path, admin: aiomysql.Connection) -> None:
    tag = uuid.uuid4().hex
    table = f"probe_lock_{tag[:8]}"
    await fetch(admin, f"CREATE TABLE {table} (x INT)")
    holder = await aiomysql.connect(host="127.0.0.1", user="root", password="", db="test", autocommit=True)
    try:
        await fetch(holder, f"LOCK TABLES {table} WRITE")
        config = write_config(tmp_path, BLOCK, gauge("locked", f"SELECT COUNT(*) AS n FROM {table} /* {tag} */"),
                              timeout="1s")
        async with exporter_for(config) as exporter:
            started = time.monotonic()
            text = (await exporter.probe("m", "127.0.0.1")).text
            assert_inside_deadline(text, started, 1.0)
        assert value(text, "probe_success") == 0
        assert await running(admin, tag) == 0
    finally:
        await fetch(holder, "UNLOCK TABLES")
        holder.close()
        await fetch(admin, f"DROP TABLE {table}")


async def test_dropped_connection_mid_query(tmp_path: Path, admin: aiomysql.Connection) -> None:
    tag = uuid.uuid4().hex
    config = write_config(tmp_path, BLOCK, gauge("victim", f"SELECT SLEEP(1.5) AS n /* {tag} */")
                          + gauge("after", "SELECT 3 AS n"), timeout="5s")
    async with exporter_for(config) as exporter:
        probe = asyncio.create_task(exporter.probe("m", "127.0.0.1", debug="true"))
        assert await _wait_running(admin, tag)
        ids = await fetch(admin, "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE %s "
                                 "AND ID <> CONNECTION_ID()", f"%{tag}%")
        await fetch(admin, f"KILL {int(ids[0][0])}")
        text = (await probe).text
    assert value(text, 'probe_sql_query_success{collector="app",query="victim"}') == 0
    assert value(text, "after") == 3
    assert value(text, "probe_success") == 0


async def test_syntax_error_in_one_query(tmp_path: Path) -> None:
    config = write_config(tmp_path, BLOCK, gauge("bad", "SELEKT 1 AS n") + gauge("good", "SELECT 2 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1", debug="true")).text
    assert value(text, "good") == 2 and "You have an error in your SQL syntax" in text
    assert value(text, 'probe_sql_query_success{collector="app",query="bad"}') == 0


SOCKET = Path("/run/mysqld/mysqld.sock")


@pytest.mark.skipif(not SOCKET.exists(), reason=f"{SOCKET} absent: this MariaDB does not listen on the default socket")
async def test_unix_socket_target(tmp_path: Path) -> None:
    socket_path = SOCKET
    config = write_config(tmp_path, BLOCK + "      target_allow_paths: [/run/mysqld/*.sock]\n",
                          gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", f"unix://{socket_path}", debug="true")).text
    assert value(text, "probe_success") == 1, text

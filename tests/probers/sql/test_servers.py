"""PostgreSQL (psycopg 3) and MariaDB (aiomysql) against the real local servers: the bad input and faults
both must survive the same way, each test run once per server (its `Dialect` has the SQL that differs).

Every fault test checks the probe answered inside its deadline and, where a query was running, that
nothing of ours is left running on the server afterwards (pg_stat_activity, the processlist). Each
driver's own tests (shipped modules, unix sockets, driver options) are in test_postgresql.py and
test_mariadb.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from tests.support.sql_probe import assert_inside_deadline, exporter_for, gauge, value, write_config
from tests.support.sql_servers import Admin, Dialect


async def _wait_running(server: Dialect, admin: Admin, tag: str) -> bool:
    for _ in range(100):
        if await server.running(admin, tag):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_failed_login_never_shows_the_password(tmp_path: Path, server: Dialect, admin: Admin,
                                                     captured_logs: list[str]) -> None:
    async with server.failed_login(admin, tmp_path) as login:
        config = write_config(tmp_path, server.block.replace(server.auth, login.auth), gauge("one", "SELECT 1 AS n"))
        async with exporter_for(config) as exporter:
            debug = (await exporter.probe("m", "127.0.0.1", debug="true")).text
            page = (await exporter.probe("m", "127.0.0.1")).text
            config_page = (await exporter.http.get("/config")).text
    assert value(page, "probe_success") == 0
    assert "Connection failed" in debug
    for shown in login.shown:
        assert shown in debug
    for text in (debug, page, config_page, "\n".join(captured_logs)):
        for secret in login.secrets:
            assert secret not in text
    assert any("Connection failed" in line for line in captured_logs)


async def test_unknown_database(tmp_path: Path, server: Dialect) -> None:
    config = write_config(tmp_path, server.block.replace("database: test", "database: no_such_db"),
                          gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1", debug="true")).text
    assert value(text, "probe_success") == 0
    assert any(error in text for error in server.unknown_database_errors), text
    assert value(text, 'probe_sql_query_success{collector="app",query="one"}') == 0


async def test_target_outside_the_allowlist_is_400(tmp_path: Path, server: Dialect) -> None:
    config = write_config(tmp_path, server.block, gauge("one", "SELECT 1 AS n"))
    port = server.address[1]
    async with exporter_for(config) as exporter:
        for target in (f"10.1.1.1:{port}", f"192.0.2.1:{port}", "user:pw@127.0.0.1", "root@127.0.0.1",
                       "127.0.0.1,10.0.0.1"):
            response = await exporter.probe("m", target)
            assert response.status_code == 400, target
            assert "pw" not in response.text or target.startswith("user")


async def test_query_past_the_deadline_is_stopped_on_the_server(tmp_path: Path, server: Dialect,
                                                                admin: Admin) -> None:
    tag = uuid.uuid4().hex
    config = write_config(tmp_path, server.block, gauge("slow", server.sleep(10, tag))
                          + gauge("after", "SELECT 1 AS n"), timeout="1s")
    async with exporter_for(config) as exporter:
        started = time.monotonic()
        text = (await exporter.probe("m", "127.0.0.1", debug="true")).text
        assert_inside_deadline(text, started, 1.0)
    assert value(text, "probe_success") == 0 and server.deadline_error in text
    assert value(text, 'probe_sql_query_success{collector="app",query="slow"}') == 0
    assert await server.running(admin, tag) == 0


async def test_query_timeout_then_next_query_on_a_new_connection(tmp_path: Path, server: Dialect,
                                                                 admin: Admin) -> None:
    tag = uuid.uuid4().hex
    config = write_config(tmp_path, server.block + "      query_timeout: 300ms\n",
                          gauge("slow", server.sleep(10, tag)) + gauge("after", "SELECT 7 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1")).text
    assert value(text, 'probe_sql_query_success{collector="app",query="slow"}') == 0
    assert value(text, "after") == 7
    assert await server.running(admin, tag) == 0


async def test_server_side_statement_limit_is_set(tmp_path: Path, server: Dialect) -> None:
    # The backstop when even cancelling or KILL QUERY cannot get through: the session's own limits.
    config = write_config(tmp_path, server.block + "      query_timeout: 1500ms\n",
                          gauge("limit", server.statement_limit_sql) + gauge("lockwait", server.lock_limit_sql))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1")).text
    assert value(text, "limit") == 1.5 and value(text, "lockwait") == server.lock_limit_for_1500ms, text


async def test_lock_wait(tmp_path: Path, server: Dialect, admin: Admin) -> None:
    tag = uuid.uuid4().hex
    table = f"probe_lock_{tag[:8]}"
    await admin.fetch(f"CREATE TABLE {table} (x INT)")
    try:
        async with server.table_locked(table):
            config = write_config(tmp_path, server.block,
                                  gauge("locked", server.tagged(f"SELECT COUNT(*) AS n FROM {table}", tag)),
                                  timeout="1s")
            async with exporter_for(config) as exporter:
                started = time.monotonic()
                text = (await exporter.probe("m", "127.0.0.1", debug="true")).text
                assert_inside_deadline(text, started, 1.0)
            assert value(text, "probe_success") == 0
            assert await server.running(admin, tag) == 0
    finally:
        await admin.fetch(f"DROP TABLE {table}")


async def test_dropped_connection_mid_query(tmp_path: Path, server: Dialect, admin: Admin) -> None:
    tag = uuid.uuid4().hex
    config = write_config(tmp_path, server.block, gauge("victim", server.sleep(1.5, tag))
                          + gauge("after", "SELECT 3 AS n"), timeout="5s")
    async with exporter_for(config) as exporter:
        probe = asyncio.create_task(exporter.probe("m", "127.0.0.1", debug="true"))
        assert await _wait_running(server, admin, tag)
        await server.kill(admin, tag)
        text = (await probe).text
    assert value(text, 'probe_sql_query_success{collector="app",query="victim"}') == 0
    assert "Query failed" in text
    assert value(text, "after") == 3  # a fresh connection ran the rest
    assert value(text, "probe_success") == 0


async def test_syntax_error_in_one_query(tmp_path: Path, server: Dialect) -> None:
    config = write_config(tmp_path, server.block, gauge("bad", "SELEKT 1 AS n") + gauge("good", "SELECT 2 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1", debug="true")).text
    assert value(text, "good") == 2 and server.syntax_error in text
    assert value(text, 'probe_sql_query_success{collector="app",query="bad"}') == 0
    assert value(text, 'probe_sql_query_success{collector="app",query="good"}') == 1


async def test_unix_socket_target(tmp_path: Path, server: Dialect) -> None:
    if not server.socket.exists():
        pytest.skip(f"{server.socket} absent: this {server.name} does not listen on its default socket")
    config = write_config(tmp_path, server.block + f"      target_allow_paths: [{server.socket.parent}/*]\n",
                          gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", f"unix://{server.socket}", debug="true")).text
        assert (await exporter.probe("m", f"unix:///tmp/{server.socket.name}")).status_code == 400
    assert value(text, "probe_success") == 1 and value(text, "one") == 1, text

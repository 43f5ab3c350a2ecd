"""PostgreSQL (psycopg 3) against the real local server: happy path, bad input and faults.

Every fault test checks the probe answered inside its deadline and, where a query was running,
that nothing of ours is left running on the server afterwards (pg_stat_activity).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .conftest import (
    DATA,
    PG_BLOCK,
    REPO,
    assert_inside_deadline,
    exporter_for,
    gauge,
    metric_lines,
    value,
    write_config,
)

pytestmark = pytest.mark.usefixtures("postgres")

BLOCK = PG_BLOCK


@pytest.fixture()
async def admin() -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    conn = await psycopg.AsyncConnection.connect(host="127.0.0.1", port=5432, dbname="test", user="postgres",
                                                 autocommit=True)
    yield conn
    await conn.close()


async def fetch(conn: psycopg.AsyncConnection[Any], sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with conn.cursor() as cursor:
        await cursor.execute(sql, args or None)
        return await cursor.fetchall() if cursor.description else []


async def running(conn: psycopg.AsyncConnection[Any], tag: str) -> int:
    rows = await fetch(conn, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                             "AND pid <> pg_backend_pid()", f"%{tag}%")
    return int(rows[0][0])


async def test_shipped_module_and_sql_exporter_examples(tmp_path: Path) -> None:
    async with exporter_for(REPO / "modules" / "sql.yml") as exporter:
        text = (await exporter.probe("postgresql", "127.0.0.1:5432")).text
    assert value(text, "probe_success") == 1, text
    assert value(text, 'pg_connections_max') > 0
    assert 'pg_database_size_bytes{datname="test"}' in text
    assert 'pg_up_info{in_recovery="false",version="' in text
    assert metric_lines(text, "pg_replication_lag_seconds") == []  # NULL on a primary: no sample

    collectors = DATA / "collectors"
    config = tmp_path / "sql.yml"
    config.write_text("modules:\n  pg:\n    prober: sql\n    sql:\n" + BLOCK
                      + f"      collector_files: [{collectors / 'pg_stats.collector.yml'}, "
                      f"{collectors / 'format_coverage.collector.yml'}]\n")
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("pg", "127.0.0.1", debug="true")).text
    metrics_text = text.split("Metrics that would have been returned:")[1].split("Module configuration")[0]
    samples = [line for line in metrics_text.splitlines() if line.startswith(("pg_server_", "pg_db_"))]
    assert value(text, "probe_success") == 1, text
    assert len(samples) >= 100
    assert "# TYPE pg_server_stat_bgwriter_checkpoints_timed counter" in text  # exact name, no _total
    assert "pg_server_stat_bgwriter_checkpoints_timed " in metrics_text
    assert 'coverage_rows{env="test",kind="b"} 2' in metrics_text
    assert 'coverage_events{column="weight",kind="a"} 10' in metrics_text
    assert "coverage_up 1" in metrics_text
    assert "coverage_stamped 5 1700000000000" in metrics_text  # timestamp_value, in milliseconds


async def test_values_nulls_and_types(tmp_path: Path) -> None:
    query = ("SELECT x::text AS k, CASE WHEN x = 2 THEN NULL ELSE x * 1.5 END::numeric AS n, x > 1 AS b "
             "FROM generate_series(1, 3) x UNION ALL SELECT NULL, 9, true")
    config = write_config(tmp_path, BLOCK, gauge("num", query, keys="[k]") + gauge("flag", query, keys="[k]",
                                                                                 values="[b]"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1")).text
    assert value(text, 'num{k="1"}') == 1.5 and value(text, 'num{k="3"}') == 4.5
    assert 'num{k="2"}' not in text  # NULL value: no sample
    assert value(text, 'num{k=""}') == 9  # NULL key: empty label
    assert value(text, 'flag{k="1"}') == 0 and value(text, 'flag{k="2"}') == 1


async def test_unknown_database(tmp_path: Path) -> None:
    config = write_config(tmp_path, BLOCK.replace("database: test", "database: no_such_db"),
                          gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1", debug="true")).text
    assert value(text, "probe_success") == 0
    assert 'database \\"no_such_db\\" does not exist' in text or 'database "no_such_db" does not exist' in text
    assert value(text, 'probe_sql_query_success{collector="app",query="one"}') == 0


async def test_failed_login_never_shows_the_password(tmp_path: Path, captured_logs: list[str]) -> None:
    # pg_hba here is `trust` for 127.0.0.1, so a wrong password cannot fail; an unknown role does,
    # with the password sent all the same. (A real wrong password is tested against MariaDB.)
    password = f"pw-{uuid.uuid4().hex}"
    block = BLOCK.replace("{username: postgres}", f"{{username: no_such_role, password: {password}}}")
    config = write_config(tmp_path, block, gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        debug = (await exporter.probe("m", "127.0.0.1", debug="true")).text
        page = (await exporter.probe("m", "127.0.0.1")).text
        config_page = (await exporter.http.get("/config")).text
    assert value(page, "probe_success") == 0
    assert "no_such_role" in debug and "Connection failed" in debug
    for text in (debug, page, config_page, "\n".join(captured_logs)):
        assert password not in text
    assert any("Connection failed" in line for line in captured_logs)


async def test_target_outside_the_allowlist_is_400(tmp_path: Path) -> None:
    config = write_config(tmp_path, BLOCK, gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        for target in ("10.1.1.1:5432", "user:pw@127.0.0.1", "127.0.0.1,10.0.0.1"):
            response = await exporter.probe("m", target)
            assert response.status_code == 400, target
            assert "pw" not in response.text or target.startswith("user")


async def test_query_past_the_deadline_is_cancelled_on_the_server(tmp_path: Path, admin: Any) -> None:
    tag = uuid.uuid4().hex
    config = write_config(tmp_path, BLOCK, gauge("slow", f"SELECT pg_sleep(10) AS n -- {tag}")
                          + gauge("after", "SELECT 1 AS n"), timeout="1s")
    async with exporter_for(config) as exporter:
        started = time.monotonic()
        text = (await exporter.probe("m", "127.0.0.1", debug="true")).text
        assert_inside_deadline(text, started, 1.0)
    assert value(text, "probe_success") == 0 and "Query timed out" in text
    assert value(text, 'probe_sql_query_success{collector="app",query="slow"}') == 0
    assert await running(admin, tag) == 0


async def test_query_timeout_leaves_time_for_the_next_query(tmp_path: Path, admin: Any) -> None:
    tag = uuid.uuid4().hex
    config = write_config(tmp_path, BLOCK + "      query_timeout: 300ms\n",
                          gauge("slow", f"SELECT pg_sleep(10) AS n -- {tag}") + gauge("after", "SELECT 7 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1")).text
    assert value(text, 'probe_sql_query_success{collector="app",query="slow"}') == 0
    assert value(text, "after") == 7
    assert await running(admin, tag) == 0


async def test_lock_wait(tmp_path: Path, admin: Any) -> None:
    tag = uuid.uuid4().hex
    table = f"probe_lock_{tag[:8]}"
    await fetch(admin, f"CREATE TABLE {table} (x int)")
    holder = await psycopg.AsyncConnection.connect(host="127.0.0.1", dbname="test", user="postgres")
    try:
        await fetch(holder, f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # held: the transaction stays open
        config = write_config(tmp_path, BLOCK, gauge("locked", f"SELECT count(*) AS n FROM {table} -- {tag}"),
                              timeout="1s")
        async with exporter_for(config) as exporter:
            started = time.monotonic()
            text = (await exporter.probe("m", "127.0.0.1", debug="true")).text
            assert_inside_deadline(text, started, 1.0)
        assert value(text, "probe_success") == 0
        assert await running(admin, tag) == 0
    finally:
        await holder.close()
        await fetch(admin, f"DROP TABLE {table}")


async def test_dropped_connection_mid_query(tmp_path: Path, admin: Any) -> None:
    tag = uuid.uuid4().hex
    config = write_config(tmp_path, BLOCK, gauge("victim", f"SELECT pg_sleep(1.5) AS n -- {tag}")
                          + gauge("after", "SELECT 3 AS n"), timeout="5s")
    async with exporter_for(config) as exporter:
        probe = asyncio.create_task(exporter.probe("m", "127.0.0.1", debug="true"))
        assert await _wait_running(admin, tag)
        await fetch(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE %s "
                           "AND pid <> pg_backend_pid()", f"%{tag}%")
        text = (await probe).text
    assert value(text, 'probe_sql_query_success{collector="app",query="victim"}') == 0
    assert "Query failed" in text
    assert value(text, "after") == 3  # a fresh connection ran the rest
    assert value(text, "probe_success") == 0


async def _wait_running(admin: Any, tag: str) -> bool:
    for _ in range(100):
        if await running(admin, tag):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_syntax_error_in_one_query(tmp_path: Path) -> None:
    config = write_config(tmp_path, BLOCK, gauge("bad", "SELEKT 1 AS n") + gauge("good", "SELECT 2 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", "127.0.0.1", debug="true")).text
    assert value(text, "good") == 2 and "SyntaxError" in text
    assert value(text, 'probe_sql_query_success{collector="app",query="bad"}') == 0
    assert value(text, 'probe_sql_query_success{collector="app",query="good"}') == 1


async def test_concurrent_probes_respect_the_per_target_limit(tmp_path: Path, admin: Any) -> None:
    tag = uuid.uuid4().hex
    config = write_config(tmp_path, BLOCK + "      max_concurrency_per_target: 1\n",
                          gauge("nap", f"SELECT 1 AS n, '{tag}' AS tag FROM pg_sleep(0.05)"), timeout="5s")
    peak = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not done.is_set():
            # Running queries of this test only (the tag): a closed probe connection's backend may linger
            # a moment, idle, and other exporters (the e2e tests') may probe the same server meanwhile.
            rows = await fetch(admin, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                      "'probe_exporter' AND datname = 'test' AND state = 'active' "
                                      f"AND query LIKE '%{tag}%' AND pid <> pg_backend_pid()")
            peak = max(peak, int(rows[0][0]))
            await asyncio.sleep(0.01)

    async with exporter_for(config) as exporter:
        watcher = asyncio.create_task(watch())
        pages = await asyncio.gather(*(exporter.probe("m", "127.0.0.1") for _ in range(20)))
        done.set()
        await watcher
    assert all(value(page.text, "probe_success") == 1 for page in pages)
    assert peak == 1


SOCKET = Path("/var/run/postgresql/.s.PGSQL.5432")


@pytest.mark.skipif(not SOCKET.exists(), reason=f"{SOCKET} absent: PostgreSQL is not on its default socket")
async def test_unix_socket_target(tmp_path: Path) -> None:
    socket_path = SOCKET
    config = write_config(tmp_path, BLOCK + "      target_allow_paths: [/var/run/postgresql/*]\n",
                          gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", f"unix://{socket_path}")).text
        assert (await exporter.probe("m", "unix:///tmp/.s.PGSQL.5432")).status_code == 400
    assert value(text, "probe_success") == 1 and value(text, "one") == 1

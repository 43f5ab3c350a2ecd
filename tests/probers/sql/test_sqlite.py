"""SQLite end to end through /probe: the zero-setup demo, mapping, faults, caching and limits.

SQLite needs no server, so the prober's generic behaviour (deadlines, partial failures, duplicate
series, caching, single flight, queueing) is tested here; the server drivers get their own files.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.sql_probe import assert_inside_deadline, exporter_for, gauge, metric_lines, value, wait_until

SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) AS n FROM c"
# About 0.2 s on a laptop: long enough for concurrent probes to overlap.
MEDIUM = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<1000000) SELECT count(*) AS n FROM c"


@pytest.fixture()
def database(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE t (k TEXT, v REAL);
        INSERT INTO t VALUES ('a', 1), ('b', 2), ('b', 3), (NULL, 4), ('n', NULL);
    """)
    conn.commit()
    conn.close()
    return path


def write_module(tmp_path: Path, metrics: str, extra: str = "", timeout: str = "5s",
                 min_interval: str = "0s") -> Path:
    (tmp_path / "app.collector.yml").write_text(
        f"collector_name: app\nmin_interval: {min_interval}\nmetrics:\n{metrics}")
    path = tmp_path / "sql.yml"
    path.write_text(f"""modules:
  lite:
    prober: sql
    timeout: {timeout}
    sql:
      driver: sqlite
      target_allow_paths: ["*.db"]
      targets:
        app: {{path: app.db}}
      collector_files: [app.collector.yml]
{extra}""")
    return path


async def test_demo_module_works_with_zero_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the demo DB is built here on first use
    async with exporter_for(REPO / "modules" / "sql.yml") as exporter:
        response = await exporter.probe("sqlite_demo", "demo")
        text = response.text
        assert response.status_code == 200
        assert value(text, "probe_success") == 1
        assert value(text, 'demo_jobs{queue="mail",state="ready"}') == 3
        # counters keep their configured name, as the Go sql_exporter writes them
        assert "# TYPE demo_job_attempts counter\n" in text
        assert value(text, 'demo_job_attempts{queue="mail"}') == 5
        # NULL key label -> "", NULL value -> no sample
        assert value(text, 'demo_order_amount_cents{currency="usd",region=""}') == 500
        assert 'queue="archive",stat=' not in text
        assert value(text, 'demo_queue_workers_max{queue="archive"}') == 1
        assert value(text, 'demo_build_info{version="1.4.2"}') == 1
        assert value(text, 'probe_sql_query_success{collector="demo",query="queue_stats"}') == 1
        assert value(text, 'probe_sql_query_rows{collector="demo",query="demo_jobs"}') == 8
        assert value(text, "probe_sql_connect_duration_seconds") > 0
        built = list((tmp_path / "cache").rglob("*.db"))
        assert len(built) == 1
        # a second probe reuses the built file
        assert value((await exporter.probe("sqlite_demo", "demo")).text, "probe_success") == 1
        assert list((tmp_path / "cache").rglob("*.db")) == built


async def test_one_bad_query_does_not_hide_the_others(tmp_path: Path, database: Path) -> None:
    config = write_module(tmp_path, gauge("good", "SELECT k, v AS n FROM t WHERE k = 'a'", keys="[k]")
                          + gauge("broken", "SELEC oops") + gauge("nokey", "SELECT 1 AS n", keys="[missing]"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("lite", "app", debug="true")).text
    assert value(text, 'good{k="a"}') == 1
    assert value(text, 'probe_sql_query_success{collector="app",query="good"}') == 1
    assert value(text, 'probe_sql_query_success{collector="app",query="broken"}') == 0
    assert value(text, 'probe_sql_query_success{collector="app",query="nokey"}') == 0
    assert value(text, "probe_success") == 0
    assert 'syntax error' in text
    assert "missing column 'missing' (the query returned: n)" in text


async def test_slow_query_is_interrupted_inside_the_deadline(tmp_path: Path, database: Path) -> None:
    config = write_module(tmp_path, gauge("slow", SLOW), timeout="1s")
    async with exporter_for(config) as exporter:
        started = time.monotonic()
        text = (await exporter.probe("lite", "app", debug="true")).text
        assert_inside_deadline(text, started, 1.0)
    assert value(text, "probe_success") == 0
    # "interrupted": SQLite itself stopped the statement, so its worker thread is free again
    assert "Query timed out" in text and "(interrupted)" in text


async def test_read_only(tmp_path: Path, database: Path) -> None:
    attach_target = tmp_path / "created.db"
    config = write_module(tmp_path, gauge("attach", f"ATTACH DATABASE '{attach_target}' AS x")
                          + gauge("write", "INSERT INTO t VALUES ('z', 9) RETURNING v AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("lite", "app", debug="true")).text
    assert value(text, 'probe_sql_query_success{collector="app",query="attach"}') == 0
    assert value(text, 'probe_sql_query_success{collector="app",query="write"}') == 0
    assert not attach_target.exists()
    assert sqlite3.connect(database).execute("SELECT count(*) FROM t").fetchone() == (5,)


async def test_a_missing_file_is_never_created(tmp_path: Path, database: Path) -> None:
    config = write_module(tmp_path, gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("lite", str(tmp_path / "nothere.db"), debug="true")).text
    assert value(text, "probe_success") == 0 and "Connection failed" in text
    assert not (tmp_path / "nothere.db").exists()


async def test_duplicate_series_are_dropped_and_reported(tmp_path: Path, database: Path) -> None:
    config = write_module(tmp_path, gauge("dup", "SELECT k, v AS n FROM t WHERE k = 'b'", keys="[k]"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("lite", "app", debug="true")).text
    assert metric_lines(text.split("Module configuration")[0].split("returned:")[-1], "dup") == ['dup{k="b"} 2']
    assert value(text, 'probe_sql_query_success{collector="app",query="dup"}') == 0
    assert "Duplicate series dropped" in text


async def test_row_limit(tmp_path: Path, database: Path) -> None:
    config = write_module(tmp_path, gauge("many", "SELECT rowid AS k, 1 AS n FROM t", keys="[k]"),
                          extra="      max_rows_per_query: 3\n")
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("lite", "app", debug="true")).text
    assert "many{" not in text.split("Module configuration")[0]
    assert value(text, 'probe_sql_query_success{collector="app",query="many"}') == 0
    assert "more than max_rows_per_query (3)" in text


async def test_bad_targets_are_400_before_connecting(tmp_path: Path, database: Path) -> None:
    config = write_module(tmp_path, gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        response = await exporter.probe("lite", "/etc/passwd")
        assert response.status_code == 400 and "not allowed" in response.text
        response = await exporter.probe("lite", "file:app.db?mode=rwc")
        assert response.status_code == 400


async def test_min_interval_serves_from_cache_without_connecting(tmp_path: Path, database: Path) -> None:
    config = write_module(tmp_path, gauge("total", "SELECT sum(v) AS n FROM t"), min_interval="1m")
    async with exporter_for(config) as exporter:
        first = (await exporter.probe("lite", "app")).text
        assert value(first, "total") == 10
        assert value(first, 'probe_sql_collector_cache_age_seconds{collector="app"}') == 0
        conn = sqlite3.connect(database)
        conn.execute("UPDATE t SET v = 100 WHERE k = 'a'")
        conn.commit()
        conn.close()
        second = (await exporter.probe("lite", "app")).text
        assert value(second, "total") == 10
        assert value(second, 'probe_sql_collector_cache_age_seconds{collector="app"}') > 0
        assert value(second, "probe_sql_connect_duration_seconds") == 0  # did not connect at all
        assert value(second, "probe_success") == 1


async def test_errors_are_not_cached(tmp_path: Path, database: Path) -> None:
    config = write_module(tmp_path, gauge("v", "SELECT v AS n FROM later"), min_interval="1m")
    async with exporter_for(config) as exporter:
        assert value((await exporter.probe("lite", "app")).text, "probe_success") == 0
        conn = sqlite3.connect(database)
        conn.executescript("CREATE TABLE later (v REAL); INSERT INTO later VALUES (7);")
        conn.close()
        text = (await exporter.probe("lite", "app")).text
        assert value(text, "probe_success") == 1 and value(text, "v") == 7


async def test_single_flight_runs_a_cached_collector_once(tmp_path: Path, database: Path) -> None:
    config = write_module(tmp_path, gauge("medium", MEDIUM), min_interval="1m")
    async with exporter_for(config) as exporter:
        pages = await asyncio.gather(*(exporter.probe("lite", "app") for _ in range(5)))
    ages = [value(page.text, 'probe_sql_collector_cache_age_seconds{collector="app"}') for page in pages]
    assert all(value(page.text, "probe_success") == 1 for page in pages)
    assert sorted(age == 0 for age in ages) == [False, False, False, False, True], ages


async def test_waiting_for_a_target_slot_counts_against_the_deadline(tmp_path: Path, database: Path) -> None:
    config = write_module(tmp_path, gauge("slow", SLOW), timeout="1s",
                          extra="      max_concurrency_per_target: 1\n")
    async with exporter_for(config) as exporter:

        async def target_slot_taken() -> bool:
            return 'probe_exporter_probes_in_flight{module="lite"} 1\n' in (await exporter.http.get("/metrics")).text

        holder = asyncio.create_task(exporter.probe("lite", "app", debug="true"))
        assert await wait_until(target_slot_taken)  # the holder runs its query before the second probe comes
        # Prometheus' header leaves this probe 1.0 - 0.5 (offset) = 0.5 s: less than the holder keeps the slot.
        queued = await exporter.probe("lite", "app", scrape_timeout=1.0, debug="true")
        held = (await holder).text
        metrics = (await exporter.http.get("/metrics")).text
    assert "Query timed out" in held
    # The exporter's own limit, not the database: 503 with the reason, never probe_success 0.
    assert queued.status_code == 503
    assert queued.text == ("Probe could not start before its deadline (0.5s): max_concurrency_per_target 1 "
                           "reached, 0 other probes of this module waiting\n")
    assert 'probe_exporter_probes_not_started_total{module="lite",reason="target_limit"} 1' in metrics


async def test_parallel_connections_keep_fast_queries_from_waiting_on_slow_ones(tmp_path: Path,
                                                                                 database: Path) -> None:
    metrics = gauge("slow", SLOW) + gauge("fast", "SELECT 1 AS n")
    sequential = write_module(tmp_path, metrics, timeout="1s")
    async with exporter_for(sequential) as exporter:
        text = (await exporter.probe("lite", "app")).text
    assert value(text, 'probe_sql_query_success{collector="app",query="fast"}') == 0  # no time left
    parallel = write_module(tmp_path, metrics, timeout="1s", extra="      max_connections_per_probe: 2\n")
    async with exporter_for(parallel) as exporter:
        text = (await exporter.probe("lite", "app")).text
    assert value(text, 'probe_sql_query_success{collector="app",query="fast"}') == 1
    assert value(text, "fast") == 1


async def test_unreadable_credentials_fail_the_probe_with_the_reason(tmp_path: Path, database: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_PROBE_PW", raising=False)
    missing_file = write_module(tmp_path, gauge("one", "SELECT 1 AS n"),
                                extra="      auth: {username: u, password_file: /nonexistent/pw}\n")
    async with exporter_for(missing_file) as exporter:
        text = (await exporter.probe("lite", "app", debug="true")).text
    assert value(text, "probe_success") == 0
    assert "Could not read the module's credentials" in text and "/nonexistent/pw" in text
    unset_env = write_module(tmp_path, gauge("one", "SELECT 1 AS n"),
                             extra="      auth: {username: u, password_env: NO_SUCH_PROBE_PW}\n")
    async with exporter_for(unset_env) as exporter:
        text = (await exporter.probe("lite", "app", debug="true")).text
    assert value(text, "probe_success") == 0 and "NO_SUCH_PROBE_PW" in text

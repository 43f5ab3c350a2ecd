"""PostgreSQL (psycopg 3) against the real local server: what only this driver has.

The shipped module and sql_exporter's example collectors, types and the per-target concurrency limit.
The bad input and faults both servers share are in test_servers.py.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.sql_probe import DATA, exporter_for, gauge, metric_lines, value, write_config
from tests.support.sql_servers import PG_BLOCK, POSTGRESQL, Admin, Dialect

pytestmark = pytest.mark.usefixtures("postgres")

BLOCK = PG_BLOCK


@pytest.fixture()
def server() -> Dialect:
    return POSTGRESQL


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


async def test_concurrent_probes_respect_the_per_target_limit(tmp_path: Path, admin: Admin) -> None:
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
            rows = await admin.fetch("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
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

"""Any database through SQLAlchemy (the optional extra), tested with SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from tests.support.sql_probe import assert_inside_deadline, exporter_for, gauge, value, write_config
from tests.support.sql_servers import PG_ADDRESS
from tests.support.sql_servers import require_server as _require

pytest.importorskip("sqlalchemy", reason="the sqlalchemy extra is not installed: pip install -e '.[sqlalchemy]'")

SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) AS n FROM c"
SQLITE_BLOCK = """      driver: sqlalchemy
      dsn: "sqlite:///{path}"
      target_allow_paths: ["*.db"]
"""


@pytest.fixture()
def database(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE t (k TEXT, v REAL); INSERT INTO t VALUES ('a', 1.5), (NULL, 2), ('n', NULL);")
    conn.close()
    return path


async def test_sqlite_through_sqlalchemy(tmp_path: Path, database: Path) -> None:
    config = write_config(tmp_path, SQLITE_BLOCK, gauge("val", "SELECT k, v AS n FROM t", keys="[k]"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", str(database), debug="true")).text
    assert value(text, "probe_success") == 1, text
    assert value(text, 'val{k="a"}') == 1.5 and value(text, 'val{k=""}') == 2 and 'val{k="n"}' not in text


async def test_sqlite_through_sqlalchemy_is_read_only_and_bounded(tmp_path: Path, database: Path) -> None:
    config = write_config(tmp_path, SQLITE_BLOCK, gauge("write", "INSERT INTO t VALUES ('z', 1) RETURNING v AS n")
                          + gauge("slow", SLOW), timeout="1s")
    async with exporter_for(config) as exporter:
        started = time.monotonic()
        text = (await exporter.probe("m", str(database), debug="true")).text
        assert_inside_deadline(text, started, 1.0)
        missing = (await exporter.probe("m", str(tmp_path / "new.db"), debug="true")).text
    assert value(text, 'probe_sql_query_success{collector="app",query="write"}') == 0
    assert "Query timed out" in text
    assert sqlite3.connect(database).execute("SELECT count(*) FROM t").fetchone() == (3,)
    assert value(missing, "probe_success") == 0 and not (tmp_path / "new.db").exists()


async def test_postgresql_through_sqlalchemy(tmp_path: Path) -> None:
    _require(PG_ADDRESS, "PostgreSQL")
    import psycopg

    tag = uuid.uuid4().hex
    block = ('      driver: sqlalchemy\n      dsn: "postgresql+psycopg://{host}:{port}/test"\n'
             "      auth: {username: postgres, password: never-shown-42}\n"
             "      target_allow: [127.0.0.1]\n      default_port: 5432\n")
    config = write_config(tmp_path, block, gauge("one", "SELECT 1 AS n")
                          + gauge("slow", f"SELECT 1 AS n FROM pg_sleep(10) -- {tag}"))
    async with exporter_for(config) as exporter:
        started = time.monotonic()
        text = (await exporter.probe("m", "127.0.0.1", debug="true")).text
        assert_inside_deadline(text, started, 2.0)
    assert value(text, "one") == 1
    assert value(text, 'probe_sql_query_success{collector="app",query="slow"}') == 0
    assert "never-shown-42" not in text and "postgresql+psycopg://postgres:<secret>@127.0.0.1:5432/test" in text
    with psycopg.connect(host="127.0.0.1", dbname="test", user="postgres") as conn:
        rows = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                            "AND pid <> pg_backend_pid()", (f"%{tag}%",)).fetchone()
    assert rows == (0,)

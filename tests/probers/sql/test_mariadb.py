"""MariaDB (aiomysql) against the real local server: what only this driver has.

The shipped module, types and a rotated password file. The bad input and faults
both servers share (a query past its budget gone from the processlist, a wrong password never shown)
are in test_servers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.sql_probe import exporter_for, gauge, metric_lines, value, write_config
from tests.support.sql_servers import MARIADB, MARIADB_BLOCK, Admin, Dialect, mariadb_user

pytestmark = pytest.mark.usefixtures("mariadb")

BLOCK = MARIADB_BLOCK


@pytest.fixture()
def server() -> Dialect:
    return MARIADB


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


async def test_rotated_password_file_is_read_on_the_next_probe(tmp_path: Path, admin: Admin,
                                                              captured_logs: list[str]) -> None:
    async with mariadb_user(admin) as (user, password):
        password_file = tmp_path / "pw"
        password_file.write_text("wrong-password\n")
        block = BLOCK.replace("{username: root}", f"{{username: {user}, password_file: {password_file}}}")
        config = write_config(tmp_path, block, gauge("one", "SELECT 1 AS n"))
        async with exporter_for(config) as exporter:
            refused = (await exporter.probe("m", "127.0.0.1")).text
            # rotated on disk: the next probe reads the new password, no reload needed
            password_file.write_text(password + "\n")
            rotated = (await exporter.probe("m", "127.0.0.1", debug="true")).text
    assert value(refused, "probe_success") == 0
    assert value(rotated, "probe_success") == 1
    for text in (refused, rotated, "\n".join(captured_logs)):
        assert password not in text and "wrong-password" not in text

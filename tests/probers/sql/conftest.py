"""SQL prober fixtures: the real PostgreSQL and MariaDB servers, config files, captured logs.

The plain helpers they use (and the tests import) live in tests/support/sql_servers.py and sql_probe.py.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.sql_probe import DATA, SilentServer
from tests.support.sql_servers import DIALECTS, MARIADB_ADDRESS, PG_ADDRESS, Admin, Dialect, require_server


@pytest.fixture(scope="session")
def postgres() -> tuple[str, int]:
    require_server(PG_ADDRESS, "PostgreSQL")
    return PG_ADDRESS


@pytest.fixture(scope="session")
def mariadb() -> tuple[str, int]:
    require_server(MARIADB_ADDRESS, "MariaDB")
    return MARIADB_ADDRESS


@pytest.fixture(params=DIALECTS, ids=[dialect.name for dialect in DIALECTS])
def server(request: pytest.FixtureRequest) -> Dialect:
    """Each local server in turn (a driver's own test file overrides this with its one server)."""
    dialect: Dialect = request.param
    request.getfixturevalue("postgres" if dialect.name == "postgresql" else "mariadb")
    return dialect


@pytest.fixture()
async def admin(server: Dialect) -> AsyncIterator[Admin]:
    """A side connection to `server`, as its superuser."""
    conn = await server.connect()
    yield conn
    await conn.close()


@pytest.fixture()
def sql_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a modules file (plus the collector files it names from tests/probers/sql/data)."""

    def write(text: str, *collector_files: str) -> Path:
        for name in collector_files:
            shutil.copy(DATA / name, tmp_path / Path(name).name)
        path = tmp_path / "sql.yml"
        path.write_text(text)
        return path

    return write


@pytest.fixture()
def captured_logs() -> Iterator[list[str]]:
    """Every process log line the exporter writes during the test, formatted, at debug level."""
    from probe_exporter.logs import LogfmtFormatter, logger

    lines: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(LogfmtFormatter().format(record))

    handler = _Collect(logging.DEBUG)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@pytest.fixture()
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()

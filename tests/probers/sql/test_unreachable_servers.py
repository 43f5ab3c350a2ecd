"""The server drivers against servers that are not there or never answer (no real database needed):
the probe fails inside its deadline and leaves no socket behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.sql_probe import (
    SilentServer,
    assert_inside_deadline,
    closed_port,
    exporter_for,
    gauge,
    value,
    write_config,
)
from tests.support.sql_servers import MARIADB_BLOCK, PG_BLOCK

BLOCKS = pytest.mark.parametrize("block", [PG_BLOCK, MARIADB_BLOCK], ids=["postgresql", "mysql"])


@BLOCKS
async def test_server_that_accepts_and_never_answers(tmp_path: Path, silent_server: SilentServer, block: str) -> None:
    config = write_config(tmp_path, block, gauge("one", "SELECT 1 AS n"), timeout="1s")
    async with exporter_for(config) as exporter:
        started = time.monotonic()
        text = (await exporter.probe("m", f"127.0.0.1:{silent_server.port}", debug="true")).text
        assert_inside_deadline(text, started, 1.0)
    # the abandoned handshake's socket was closed, not left to the hung server
    assert silent_server.accepted and silent_server.still_open() == 0
    assert value(text, "probe_success") == 0 and "Connection timed out" in text


@BLOCKS
async def test_connection_refused_fails_fast(tmp_path: Path, block: str) -> None:
    config = write_config(tmp_path, block, gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        started = time.monotonic()
        text = (await exporter.probe("m", f"127.0.0.1:{closed_port()}", debug="true")).text
        assert_inside_deadline(text, started, 1.0)
    assert value(text, "probe_success") == 0 and "Connection failed" in text


async def test_mysql_tls_files_that_cannot_be_read_fail_the_probe(tmp_path: Path) -> None:
    config = write_config(tmp_path, MARIADB_BLOCK + "      options: {ssl_ca: /nonexistent/ca.pem}\n",
                          gauge("one", "SELECT 1 AS n"))
    async with exporter_for(config) as exporter:
        text = (await exporter.probe("m", f"127.0.0.1:{closed_port()}", debug="true")).text
    assert value(text, "probe_success") == 0
    assert "Connection failed" in text and "FileNotFoundError" in text

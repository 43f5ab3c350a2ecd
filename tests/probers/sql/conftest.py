"""SQL prober fixtures: the real PostgreSQL and MariaDB servers, config files, an exporter client.

PostgreSQL (127.0.0.1:5432, trust auth, database `test`) and MariaDB (127.0.0.1:3306, root without
password, database `test`) are real local servers. In CI (CI=true) their absence fails the tests;
elsewhere the tests skip with a message saying how to start them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[3]
DATA = Path(__file__).resolve().parent / "data"
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


def _require(address: tuple[str, int], name: str) -> None:
    if _reachable(address):
        return
    message = f"{name} is not reachable at {address[0]}:{address[1]}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: .ci/run should have started it")
    pytest.skip(f"{message}; {START_HINT}")


@pytest.fixture(scope="session")
def postgres() -> tuple[str, int]:
    _require(PG_ADDRESS, "PostgreSQL")
    return PG_ADDRESS


@pytest.fixture(scope="session")
def mariadb() -> tuple[str, int]:
    _require(MARIADB_ADDRESS, "MariaDB")
    return MARIADB_ADDRESS


class ProbeClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client

    async def probe(self, module: str, target: str, scrape_timeout: float | None = None,
                    **params: str) -> httpx.Response:
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": str(scrape_timeout)} if scrape_timeout else {}
        return await self.http.get("/probe", params={"module": module, "target": target, **params},
                                   headers=headers)


@asynccontextmanager
async def exporter_for(config_path: Path) -> AsyncIterator[ProbeClient]:
    exporter = Exporter(Settings(config_files=[str(config_path)]))
    app = create_app(exporter)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://exporter", timeout=60) as client:
            yield ProbeClient(client)


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


def gauge(name: str, query: str, *, keys: str = "", values: str = "[n]") -> str:
    """One collector-file metric entry (YAML) with an inline query."""
    key_line = f"    key_labels: {keys}\n" if keys else ""
    query_text = query.replace("\\", "\\\\").replace('"', '\\"')
    return (f"  - metric_name: {name}\n    type: gauge\n    help: {name}\n{key_line}    values: {values}\n"
            f"    query: \"{query_text}\"\n")


def write_config(tmp_path: Path, sql_block: str, metrics: str, *, timeout: str = "2s",
                 min_interval: str = "0s") -> Path:
    """Module `m` with `sql_block` (indented 6) and a collector file `app` holding `metrics`."""
    (tmp_path / "app.collector.yml").write_text(
        f"collector_name: app\nmin_interval: {min_interval}\nmetrics:\n{metrics}")
    path = tmp_path / "sql.yml"
    path.write_text(f"modules:\n  m:\n    prober: sql\n    timeout: {timeout}\n    sql:\n{sql_block}"
                    "      collector_files: [app.collector.yml]\n")
    return path


def assert_inside_deadline(text: str, started: float, deadline: float) -> None:
    """The probe finished at its deadline by its own clock (probe_duration_seconds), and the HTTP answer
    came soon after. The slack (1 s, 3 s) is for a loaded CI machine, not a performance claim: both
    still catch a probe that waited for the server, which the fault tests make sleep 10 s."""
    assert value(text, "probe_duration_seconds") < deadline + 1.0
    elapsed = time.monotonic() - started
    assert elapsed < deadline + 3.0, elapsed


def metric_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


def value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.rpartition(" ")[0] == series:
            return float(line.rpartition(" ")[2])
    raise AssertionError(f"{series} not in output:\n{text}")


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


class SilentServer:
    """Accepts TCP connections and never sends a byte (a hung server or a black-holing proxy)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def still_open(self) -> int:
        """Accepted connections the client has not closed (no EOF seen yet)."""
        count = 0
        for conn in self.accepted:
            conn.setblocking(False)
            try:
                while conn.recv(65536):
                    pass  # what the client sent (PG's startup packet): read past it to see EOF
            except BlockingIOError:
                count += 1
            except OSError:
                pass  # reset by the client: closed
        return count

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture()
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def closed_port() -> int:
    """A local port nobody listens on (connection refused)."""
    return free_port()


async def wait_until(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return False

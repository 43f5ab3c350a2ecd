"""Probing the SQL test servers through a whole in-process exporter, and reading its pages back.

`write_config` writes a module `m` with one collector; `exporter_for` runs an exporter on a config;
`value` and `metric_lines` read its page. `SilentServer` is a TCP server that never answers.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.support.paths import REPO
from tests.support.ports import free_port

# Collector files and sql_exporter examples the SQL tests load.
DATA = REPO / "tests" / "probers" / "sql" / "data"


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

"""--probes.body-memory-limit: the bytes of response bodies held for matching, over the whole process.
In process with a small budget, and against a real exporter process with 20 endless bodies at once."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from probe_exporter.pipeline import run_probe
from probe_exporter.probers.http.body import BODY_BUDGET, MemoryBudget
from probe_exporter.settings import Settings
from tests.support.exporter_process import ExporterProcess
from tests.support.http_probe import http_module
from tests.support.http_server import LocalServer, Resp

REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20
BUDGET_REASON = "response bodies held for matching would exceed --probes.body-memory-limit"


async def test_a_body_past_the_budget_fails_with_the_reason(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(body=b"x" * (2 * MIB) if req.path == "/big" else b"x" * (MIB // 2)))
    module = http_module({"fail_if_body_not_matches_regexp": ["x"]})
    settings = Settings(body_memory_limit=MIB)
    big = await run_probe("test", module, url + "/big", 5.0, settings=settings)
    assert not big.success
    assert f"{BUDGET_REASON} (1MiB): set body_size_limit" in big.reason
    small = await run_probe("test", module, url + "/small", 5.0, settings=settings)
    assert small.success, small.log.text()
    assert BODY_BUDGET.held == 0  # every byte given back
    unlimited = await run_probe("test", module, url + "/big", 5.0, settings=Settings(body_memory_limit=0))
    assert unlimited.success


async def test_concurrent_bodies_share_the_budget(http_server: LocalServer) -> None:
    """Each body fits alone; together they do not: some probes fail with the budget's reason."""
    url = http_server.route(lambda req: Resp(body=b"y" * (3 * MIB)))
    module = http_module({"fail_if_body_not_matches_regexp": ["y"]})
    settings = Settings(body_memory_limit=8 * MIB)
    outcomes = await asyncio.gather(*(run_probe("test", module, url, 10.0, settings=settings) for _ in range(8)))
    assert any(o.success for o in outcomes)
    assert all(o.success or BUDGET_REASON in o.reason for o in outcomes)
    assert BODY_BUDGET.held == 0


class EndlessBodyServer:
    """A real HTTP server on loopback whose responses never end (no length, no close)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        chunk = b"a" * (256 << 10)
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                while True:
                    conn.sendall(chunk)
            except OSError:
                return

    def close(self) -> None:
        self._listener.close()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


@pytest.fixture()
def endless_server() -> Iterator[EndlessBodyServer]:
    server = EndlessBodyServer()
    yield server
    server.close()


def test_twenty_endless_bodies_stay_within_the_budget(tmp_path: Path, endless_server: EndlessBodyServer,
                                                      http_server: LocalServer) -> None:
    config = tmp_path / "endless.yml"
    config.write_text("modules:\n  endless:\n    prober: http\n    timeout: 30s\n    http:\n"
                      "      fail_if_body_not_matches_regexp: ['never-sent']\n")
    small = http_server.route(lambda req: Resp(body=b"never-sent"))
    # One worker: the whole budget in the one process whose memory is measured.
    command = [sys.executable, "-m", "probe_exporter", f"--config.file={config}", "--web.workers=1"]
    with ExporterProcess(command, cwd=REPO) as process:
        base = process.wait_listening()
        pid = process.process.pid

        def probe(target: str) -> str:
            response = httpx.get(base + "/probe", params={"module": "endless", "target": target, "debug": "true"},
                                 timeout=60)
            assert response.status_code == 200
            return response.text

        assert "probe_success 1" in probe(small)  # warmed up: every import done
        before = _status_kib(pid, "VmRSS")

        async def twenty() -> list[str]:
            target = f"http://127.0.0.1:{endless_server.port}/"
            return list(await asyncio.gather(*(asyncio.to_thread(probe, target) for _ in range(20))))

        results = asyncio.run(twenty())
        peak = _status_kib(pid, "VmHWM")
        after = _status_kib(pid, "VmRSS")
    for text in results:
        assert "probe_success 0" in text
        assert BUDGET_REASON in text or "body larger than 64MiB to match against" in text
    assert any(BUDGET_REASON in text for text in results)  # 20 x 64 MiB would not fit in 256 MiB
    assert peak <= 400 * 1024, f"peak RSS {peak} KiB"
    assert after - before <= 50 * 1024, f"RSS {before} KiB before, {after} KiB after"


def test_each_worker_holds_its_share_of_the_budget() -> None:
    budget = MemoryBudget(8 * MIB)
    budget.workers = 2
    assert budget.take(4 * MIB)
    assert not budget.take(1)  # the other half is the other worker's
    budget.give_back(4 * MIB)
    assert budget.held == 0 and budget.take(4 * MIB)


async def test_a_worker_probes_with_its_share(http_server: LocalServer) -> None:
    """With 4 workers sharing 8 MiB, a worker holds at most 2 MiB: a 3 MiB body fails."""
    url = http_server.route(lambda req: Resp(body=b"z" * (3 * MIB)))
    module = http_module({"fail_if_body_not_matches_regexp": ["z"]})
    shared = await run_probe("test", module, url, 5.0, settings=Settings(body_memory_limit=8 * MIB, web_workers=4))
    assert not shared.success and BUDGET_REASON in shared.reason
    alone = await run_probe("test", module, url, 5.0, settings=Settings(body_memory_limit=8 * MIB, web_workers=1))
    assert alone.success, alone.log.text()

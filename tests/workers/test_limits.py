"""`--probes.max-concurrency` and a module's `max_concurrency` limit the whole exporter, not each worker."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.workers.cluster import get, start_exporter

HOLD_SECONDS = 0.2
PROBES = 10
LOG_LINK = re.compile(r'href="logs\?id=(\d+)"')


class _Target:
    """An HTTP target that holds every request a moment and records how many it served at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with target.lock:
                    target.in_flight += 1
                    target.peak = max(target.peak, target.in_flight)
                time.sleep(HOLD_SECONDS)
                with target.lock:
                    target.in_flight -= 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"


@pytest.fixture()
def target() -> Iterator[_Target]:
    held = _Target()
    thread = threading.Thread(target=held.server.serve_forever, daemon=True)
    thread.start()
    yield held
    held.server.shutdown()
    held.server.server_close()


def _probe_concurrently(base: str, target: _Target, module: str) -> set[int]:
    """PROBES probes at once on fresh connections; returns the workers that ran them (from the history)."""
    with ThreadPoolExecutor(PROBES) as pool:
        bodies = list(pool.map(lambda _: get(f"{base}/probe?module={module}&target={target.url}", timeout=20),
                               range(PROBES)))
    assert all("\nprobe_success 1\n" in body for body in bodies)
    return {int(probe_id) % 2 for probe_id in LOG_LINK.findall(get(base + "/"))}


@pytest.mark.parametrize(("modules", "flags", "limit"), [
    ("modules:\n  held:\n    prober: http\n    timeout: 10s\n    max_concurrency: 1\n", (), 1),
    ("modules:\n  held:\n    prober: http\n    timeout: 10s\n", ("--probes.max-concurrency", "2"), 2),
], ids=["module max_concurrency", "--probes.max-concurrency"])
def test_limits_count_the_probes_of_every_worker(tmp_path: Path, target: _Target, modules: str,
                                                 flags: tuple[str, ...], limit: int) -> None:
    config = tmp_path / "modules.yml"
    config.write_text(modules)
    with start_exporter(config, extra=flags) as exporter:
        workers = _probe_concurrently(exporter.base, target, "held")
    assert workers == {0, 1}  # both workers ran probes at the same time...
    assert target.peak == limit  # ...yet never more than the limit at once

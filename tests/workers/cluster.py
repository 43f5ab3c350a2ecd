"""A real exporter with several workers, as the CLI starts it, and what the tests ask of it."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.paths import REPO
from tests.support.ports import free_port

MODULES = """modules:
  http_2xx:
    prober: http
    timeout: 5s
"""
LOG_LINK = re.compile(r'href="logs\?id=(\d+)"')
WORKER_INFO = re.compile(r'^probe_exporter_worker_info\{pid="(\d+)",worker="(\d+)"\} 1$', re.M)


def get(url: str, method: str = "GET", timeout: float = 10) -> str:
    """A fresh connection per request, so the kernel picks a worker each time."""
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout) as response:
        return str(response.read().decode())


def status(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for whoever reaps orphans."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def until(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        get(url, timeout=2)
    except OSError:
        return False
    return True


def listening_sockets(port: int) -> int:
    """Sockets in LISTEN state on 127.0.0.1:`port`: one per worker once each has started serving (the
    kernel spreads connections only over sockets that listen)."""
    local = f"0100007F:{port:04X}"
    return sum(1 for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
               if line.split()[1] == local and line.split()[3] == "0A")


def sample(text: str, name_and_labels: str) -> float:
    """The value of one sample in a /metrics text (0 when absent)."""
    match = re.search(rf"^{re.escape(name_and_labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def history_ids(base: str) -> list[int]:
    """The probe ids the landing page's history links to, newest first."""
    return [int(found) for found in LOG_LINK.findall(get(base + "/"))]


@dataclass
class Exporter:
    process: subprocess.Popen[bytes]
    base: str
    config: Path

    def workers(self) -> set[int]:
        return children(self.process.pid)

    def probe_url(self, target: str | None = None, module: str = "http_2xx") -> str:
        return f"{self.base}/probe?module={module}&target={target or self.base + '/-/healthy'}"


@contextlib.contextmanager
def start_exporter(config: Path, workers: int = 2, extra: tuple[str, ...] = ()) -> Iterator[Exporter]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "probe_exporter", "--config.file", str(config),
                                "--web.listen-address", f"127.0.0.1:{port}", "--web.workers", str(workers),
                                *extra], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    exporter = Exporter(process, f"http://127.0.0.1:{port}", config)
    try:
        until(lambda: process.poll() is None and len(children(process.pid)) == workers)
        until(lambda: answers(exporter.base + "/-/healthy"))
        until(lambda: listening_sockets(port) == max(workers, 1))
        yield exporter
    finally:
        if process.poll() is None:
            process.terminate()  # SIGTERM: the parent stops its workers
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stderr.close()  # type: ignore[union-attr]


class HeldTarget:
    """An HTTP target that holds every request `hold` seconds and records how many it served at once."""

    def __init__(self, hold: float = 0.2) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.arrived = 0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with target.lock:
                    target.in_flight += 1
                    target.arrived += 1
                    target.peak = max(target.peak, target.in_flight)
                time.sleep(hold)
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


@contextlib.contextmanager
def held_target(hold: float = 0.2) -> Iterator[HeldTarget]:
    held = HeldTarget(hold)
    thread = threading.Thread(target=held.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield held
    finally:
        held.server.shutdown()
        held.server.server_close()

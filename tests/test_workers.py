"""`--web.workers 2`: the real CLI, two worker processes on one loopback port, signals relayed by the parent."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.ports import free_port

MODULES = """modules:
  http_2xx:
    prober: http
    timeout: 5s
"""
EXTRA_MODULE = """  tcp_connect:
    prober: tcp
    timeout: 5s
"""
WORKER_INFO = re.compile(r'^probe_exporter_worker_info\{pid="(\d+)",worker="(\d+)"\} 1$', re.M)
MODULES_LOADED = re.compile(r'^probe_exporter_config_modules\{prober="(\w+)"\} (\d+)', re.M)


def get(url: str, method: str = "GET") -> str:
    """A fresh connection per request, so the kernel picks a worker each time."""
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as response:
        return str(response.read().decode())


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


def modules_by_worker(base: str, attempts: int = 60) -> dict[int, dict[str, int]]:
    """pid -> loaded modules per prober, from /metrics on fresh connections until both workers answered."""
    seen: dict[int, dict[str, int]] = {}
    for _ in range(attempts):
        text = get(base + "/metrics")
        pid = int(WORKER_INFO.findall(text)[0][0])
        seen[pid] = {prober: int(count) for prober, count in MODULES_LOADED.findall(text)}
        if len(seen) == 2:
            break
    return seen


@pytest.fixture()
def exporter(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    config = tmp_path / "modules.yml"
    config.write_text(MODULES)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "probe_exporter", "--config.file", str(config),
                                "--web.listen-address", f"127.0.0.1:{port}", "--web.workers", "2"],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        until(lambda: process.poll() is None and len(children(process.pid)) == 2)
        until(lambda: _answers(base + "/-/healthy"))
        yield process, base, config
    finally:
        if process.poll() is None:
            process.terminate()  # SIGTERM: the parent stops its workers
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stderr.close()  # type: ignore[union-attr]


def _answers(url: str) -> bool:
    try:
        get(url)
    except OSError:
        return False
    return True


def test_two_workers_share_the_port_and_answer_probes(exporter: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    process, base, _ = exporter
    workers = children(process.pid)
    answered: set[int] = set()
    for _ in range(40):
        probe = get(f"{base}/probe?module=http_2xx&target={base}/-/healthy")
        assert "\nprobe_success 1\n" in probe
        metrics = get(base + "/metrics")
        answered.update(int(pid) for pid, _ in WORKER_INFO.findall(metrics))
    assert answered == workers
    # Per-worker self-metrics: each worker counts only the probes it ran, all of them together 40.
    total = 0.0
    for pid in workers:
        text = next(t for t in (get(base + "/metrics") for _ in range(60)) if f'pid="{pid}"' in t)
        total += float(re.search(r'^probe_exporter_probes_total\{module="http_2xx",prober="http",'
                                 r'result="success"\} (\S+)$', text, re.M).group(1))  # type: ignore[union-attr]
    assert total == 40


def test_sighup_and_reload_endpoint_reach_every_worker(exporter: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    process, base, config = exporter
    assert {pid: loaded.get("tcp", 0) for pid, loaded in modules_by_worker(base).items()} == dict.fromkeys(
        children(process.pid), 0)
    config.write_text(MODULES + EXTRA_MODULE)
    os.kill(process.pid, signal.SIGHUP)
    until(lambda: {loaded.get("tcp", 0) for loaded in modules_by_worker(base).values()} == {1})
    # /-/reload lands on one worker; the parent has the other reload too.
    config.write_text(MODULES)
    get(base + "/-/reload", method="POST")
    until(lambda: {loaded.get("tcp", 0) for loaded in modules_by_worker(base).values()} == {0})
    assert len(modules_by_worker(base)) == 2


def test_sigterm_stops_every_worker(exporter: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    process, _, _ = exporter
    workers = children(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert not any(running(pid) for pid in workers)


def test_a_worker_that_dies_stops_the_rest(exporter: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    process, _, _ = exporter
    first, second = sorted(children(process.pid))
    os.kill(first, signal.SIGKILL)
    assert process.wait(timeout=15) == 1
    assert not running(second)
    assert b"Worker exited" in process.stderr.read()  # type: ignore[union-attr]


def test_workers_do_not_outlive_a_killed_parent(exporter: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    process, base, _ = exporter
    workers = children(process.pid)
    process.kill()  # SIGKILL: nothing relays; the workers' parent-death signal stops them
    process.wait()
    until(lambda: not any(running(pid) for pid in workers))
    assert not _answers(base + "/-/healthy")

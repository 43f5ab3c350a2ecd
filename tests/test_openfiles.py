"""The exporter raises its soft open-files limit to the hard one at startup, as Go programs do, and
sizes its default concurrency limit from it (so it never queues a probe blackbox_exporter would run)."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from probe_exporter.limits import default_max_concurrency
from tests.support.ports import free_port

SYSTEMD_SOFT_LIMIT = 1024


def _soft_limit_1024() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (SYSTEMD_SOFT_LIMIT, hard))


def _limits_of(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files line in /proc/PID/limits")


@pytest.fixture()
def started_with_1024(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= SYSTEMD_SOFT_LIMIT:
        pytest.fail(f"this machine's hard open-files limit ({hard}) leaves nothing to raise")
    config = tmp_path / "m.yml"
    config.write_text("modules:\n  tcp_connect:\n    prober: tcp\n")
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen([sys.executable, "-m", "probe_exporter", f"--config.file={config}",
                                f"--web.listen-address={address}"],
                               stderr=subprocess.PIPE, text=True, preexec_fn=_soft_limit_1024)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{address}/-/healthy", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the exporter did not start")
        yield process, address
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_soft_open_files_limit_is_raised_to_the_hard_one_and_logged(
        started_with_1024: tuple[subprocess.Popen[str], str]) -> None:
    process, address = started_with_1024
    soft, hard = _limits_of(process.pid)
    assert soft == hard > SYSTEMD_SOFT_LIMIT
    metrics = httpx.get(f"http://{address}/metrics").text
    assert f"probe_exporter_max_concurrent_probes {default_max_concurrency(hard)}" in metrics
    assert "probe_exporter_event_loop_lag_seconds_count" in metrics
    process.terminate()
    _, log = process.communicate(timeout=10)
    line = next(line for line in log.splitlines() if 'msg="Open-files limit"' in line)
    assert f"soft_limit={hard}" in line and f"raised_from={SYSTEMD_SOFT_LIMIT}" in line


def test_the_default_limit_follows_the_open_files_limit() -> None:
    assert default_max_concurrency(1024) == 480
    assert default_max_concurrency(1_048_576) == 524_256
    assert default_max_concurrency(10) == 1  # never 0, which would mean unlimited

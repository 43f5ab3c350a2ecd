"""`--web.workers 2`: the real CLI, two worker processes on one loopback port, signals relayed by the parent."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workers.cluster import (
    MODULES,
    WORKER_INFO,
    Exporter,
    answers,
    get,
    running,
    sample,
    start_exporter,
    until,
)

EXTRA_MODULE = """  tcp_connect:
    prober: tcp
    timeout: 5s
"""
MODULES_LOADED = re.compile(r'^probe_exporter_config_modules\{prober="(\w+)"\} (\d+)', re.M)
SUCCESSES = 'probe_exporter_probes_total{module="http_2xx",prober="http",result="success"}'


def loaded_tcp_modules(base: str, scrapes: int = 20) -> set[int]:
    """The tcp module counts /metrics reports over many fresh connections (so both workers answer)."""
    return {int(dict(MODULES_LOADED.findall(get(base + "/metrics"))).get("tcp", 0)) for _ in range(scrapes)}


@pytest.fixture()
def exporter(tmp_path: Path) -> Iterator[Exporter]:
    config = tmp_path / "modules.yml"
    config.write_text(MODULES)
    with start_exporter(config) as running_exporter:
        yield running_exporter


def test_the_default_is_one_worker_per_usable_cpu(tmp_path: Path) -> None:
    config = tmp_path / "modules.yml"
    config.write_text(MODULES)
    with start_exporter(config, workers=len(os.sched_getaffinity(0)), extra=("--web.workers", "0")) as started:
        assert len(started.workers()) == len(os.sched_getaffinity(0))


def test_two_workers_share_the_port_and_report_as_one(exporter: Exporter) -> None:
    workers = exporter.workers()
    for _ in range(40):
        assert "\nprobe_success 1\n" in get(exporter.probe_url())
    # Whichever worker answers, /metrics lists both workers and counts every probe once.
    for _ in range(10):
        metrics = get(exporter.base + "/metrics")
        assert {int(pid) for pid, _ in WORKER_INFO.findall(metrics)} == workers
        assert sample(metrics, SUCCESSES) == 40


def test_sighup_and_reload_endpoint_reach_every_worker(exporter: Exporter) -> None:
    assert loaded_tcp_modules(exporter.base) == {0}
    exporter.config.write_text(MODULES + EXTRA_MODULE)
    os.kill(exporter.process.pid, signal.SIGHUP)
    until(lambda: loaded_tcp_modules(exporter.base) == {1})
    # /-/reload lands on one worker, which has the others reload too.
    exporter.config.write_text(MODULES)
    get(exporter.base + "/-/reload", method="POST")
    until(lambda: loaded_tcp_modules(exporter.base) == {0})


def test_sigterm_stops_every_worker(exporter: Exporter) -> None:
    workers = exporter.workers()
    exporter.process.send_signal(signal.SIGTERM)
    assert exporter.process.wait(timeout=40) == 0
    assert not any(running(pid) for pid in workers)


def test_a_worker_that_dies_is_replaced(exporter: Exporter) -> None:
    first, second = sorted(exporter.workers())
    os.kill(first, signal.SIGKILL)
    until(lambda: len(exporter.workers()) == 2 and first not in exporter.workers())
    assert second in exporter.workers() and running(second)
    assert exporter.process.poll() is None
    until(lambda: sample(get(exporter.base + "/metrics"), "probe_exporter_worker_restarts_total") == 1)


def test_workers_do_not_outlive_a_killed_parent(exporter: Exporter) -> None:
    workers = exporter.workers()
    exporter.process.kill()  # SIGKILL: nothing relays; the workers' parent-death signal stops them
    exporter.process.wait()
    until(lambda: not any(running(pid) for pid in workers))
    assert not answers(exporter.base + "/-/healthy")


def test_one_worker_runs_without_a_supervisor(tmp_path: Path) -> None:
    config = tmp_path / "modules.yml"
    config.write_text(MODULES)
    with start_exporter(config, workers=0, extra=("--web.workers", "1")) as started:
        assert started.workers() == set()
        assert "\nprobe_success 1\n" in get(started.probe_url())



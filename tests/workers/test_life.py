"""Reloads, a worker's death and a graceful stop, with two workers: the exporter stays one."""

from __future__ import annotations

import os
import re
import signal
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.workers.cluster import (
    MODULES,
    WORKER_INFO,
    get,
    held_target,
    history_ids,
    sample,
    start_exporter,
    status,
    until,
)

BROKEN = "modules:\n  broken:\n    prober: nosuch\n"
RELOAD_OK = "probe_exporter_config_last_reload_successful"


def test_a_broken_config_keeps_every_worker_on_the_old_one(tmp_path: Path) -> None:
    config = tmp_path / "modules.yml"
    config.write_text(MODULES)
    with start_exporter(config) as exporter:
        config.write_text(BROKEN)
        assert status(exporter.base + "/-/reload", method="POST") == 500
        os.kill(exporter.process.pid, signal.SIGHUP)
        until(lambda: sample(get(exporter.base + "/metrics"), RELOAD_OK) == 0 and exporter.process.poll() is None)
        for _ in range(20):  # fresh connections: both workers answer
            page = get(exporter.base + "/config")
            assert "http_2xx:" in page and "broken" not in page
            assert "\nprobe_success 1\n" in get(exporter.probe_url())
        assert {probe_id % 2 for probe_id in history_ids(exporter.base)} == {0, 1}
        # Fixed again: every worker switches together.
        config.write_text(MODULES.replace("http_2xx", "http_renamed"))
        assert status(exporter.base + "/-/reload", method="POST") == 200
        for _ in range(20):
            assert "http_renamed:" in get(exporter.base + "/config")
            assert sample(get(exporter.base + "/metrics"), RELOAD_OK) == 1


def test_a_replacement_worker_runs_the_config_the_others_reloaded(tmp_path: Path) -> None:
    config = tmp_path / "modules.yml"
    config.write_text(MODULES)
    with start_exporter(config) as exporter:
        config.write_text(MODULES.replace("http_2xx", "http_renamed"))
        assert status(exporter.base + "/-/reload", method="POST") == 200
        victim = min(exporter.workers())
        os.kill(victim, signal.SIGKILL)
        until(lambda: len(exporter.workers()) == 2 and victim not in exporter.workers())
        until(lambda: len(WORKER_INFO.findall(get(exporter.base + "/metrics"))) == 2)
        for _ in range(20):
            assert "http_renamed:" in get(exporter.base + "/config")


def test_killing_a_worker_loses_none_of_the_other_workers_probes(tmp_path: Path) -> None:
    config = tmp_path / "modules.yml"
    config.write_text(MODULES)
    with start_exporter(config) as exporter, held_target(hold=1.5) as target, ThreadPoolExecutor(12) as pool:
        pids = {int(pid): int(index) for pid, index in WORKER_INFO.findall(get(exporter.base + "/metrics"))}
        victim = min(pids)
        survivor_index = 1 - pids[victim]

        def probe() -> str | None:
            try:
                return get(exporter.probe_url(target.url), timeout=20)
            except (urllib.error.URLError, ConnectionError):  # served by the killed worker
                return None

        futures = [pool.submit(probe) for _ in range(12)]
        until(lambda: target.in_flight == 12)
        os.kill(victim, signal.SIGKILL)
        answers = [future.result() for future in futures]
        until(lambda: len(exporter.workers()) == 2 and victim not in exporter.workers())
        survived = [answer for answer in answers if answer is not None]
        assert len(survived) < 12 and all("\nprobe_success 1\n" in answer for answer in survived)
        # Every probe the surviving worker ran answered: its ids in the history are those answers.
        survivors_probes = [probe_id for probe_id in history_ids(exporter.base) if probe_id % 2 == survivor_index]
        assert len(survivors_probes) == len(survived)
        assert "\nprobe_success 1\n" in get(exporter.probe_url())  # the replacement serves


def test_sigterm_lets_probes_in_flight_finish(tmp_path: Path) -> None:
    config = tmp_path / "modules.yml"
    config.write_text(MODULES)
    with start_exporter(config) as exporter, held_target(hold=1.5) as target, ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(get, exporter.probe_url(target.url), "GET", 20) for _ in range(4)]
        until(lambda: target.in_flight == 4)
        exporter.process.send_signal(signal.SIGTERM)
        assert all(re.search(r"^probe_success 1$", future.result(), re.M) for future in futures)
        assert exporter.process.wait(timeout=40) == 0

"""/metrics of several workers is one exporter's: counters sum over the workers, dead ones included,
and never go backwards between two scrapes."""

from __future__ import annotations

import http.client
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.workers.cluster import MODULES, get, sample, start_exporter, status, until

SUCCESSES = 'probe_exporter_probes_total{module="http_2xx",prober="http",result="success"}'
# A probe whose target (the exporter's own /-/healthy) was on the killed worker fails: counted too.
FAILURES = 'probe_exporter_probes_total{module="http_2xx",prober="http",result="failure"}'
DURATIONS = 'probe_exporter_probe_duration_seconds_count{module="http_2xx",prober="http"}'
COUNTERS = (SUCCESSES, DURATIONS, "process_cpu_seconds_total")


def test_counters_are_monotonic_and_sum_over_workers_while_probes_run_and_a_worker_dies(tmp_path: Path) -> None:
    config = tmp_path / "modules.yml"
    config.write_text(MODULES)
    with start_exporter(config) as exporter:
        succeeded = 0
        lock = threading.Lock()
        stop = threading.Event()

        def probe_until_stopped() -> None:
            nonlocal succeeded
            while not stop.is_set():
                try:
                    body = get(exporter.probe_url())
                except (OSError, http.client.HTTPException):  # a connection the killed worker had accepted
                    continue
                if "\nprobe_success 1\n" in body:
                    with lock:
                        succeeded += 1

        scrapes: list[dict[str, float]] = []

        def scrape(times: int) -> None:
            for _ in range(times):
                text = get(exporter.base + "/metrics")
                scrapes.append({name: sample(text, name) for name in COUNTERS})

        with ThreadPoolExecutor(4) as pool:
            probers = [pool.submit(probe_until_stopped) for _ in range(3)]
            scrape(40)
            victim = min(exporter.workers())
            os.kill(victim, signal.SIGKILL)
            until(lambda: len(exporter.workers()) == 2 and victim not in exporter.workers())
            scrape(40)
            stop.set()
            for future in probers:
                future.result()
        for name in COUNTERS:
            series = [values[name] for values in scrapes]
            assert series == sorted(series), f"{name} went backwards: {series}"
        assert scrapes[40][SUCCESSES] > 0
        # After the probes: every probe that answered is counted once, whichever worker ran it.
        final = get(exporter.base + "/metrics")
        assert sample(final, SUCCESSES) >= succeeded  # a probe cut off by the kill may have been counted
        assert sample(final, SUCCESSES) <= succeeded + 3
        assert sample(final, DURATIONS) == sample(final, SUCCESSES) + sample(final, FAILURES)


def test_snmp_exporter_stats_count_over_workers(tmp_path: Path) -> None:
    """snmp_exporter's own metrics (created at import, before the fork) are the whole exporter's too."""
    config = tmp_path / "modules.yml"
    config.write_text(MODULES + "  if_mib:\n    prober: snmp\n    snmp:\n      walk: [1.3.6.1.2.1.2]\n"
                      "      auth: {community: public}\n")
    with start_exporter(config) as exporter:
        for _ in range(20):
            assert status(exporter.base + "/snmp") == 400  # no target: counted in snmp_request_errors_total
        for _ in range(6):
            text = get(exporter.base + "/metrics")
            assert sample(text, "snmp_request_errors_total") == 20
            # Every SNMP module's duration series exists from the start, once.
            assert text.count('snmp_collection_duration_seconds_count{module="if_mib"}') == 1


def test_event_loop_lag_is_reported_per_worker(tmp_path: Path) -> None:
    config = tmp_path / "modules.yml"
    config.write_text(MODULES)
    with start_exporter(config) as exporter:
        until(lambda: all(sample(get(exporter.base + "/metrics"),
                                 f'probe_exporter_event_loop_lag_seconds_count{{worker="{index}"}}') > 0
                          for index in (0, 1)))
        assert "probe_exporter_event_loop_lag_seconds_count " not in get(exporter.base + "/metrics")

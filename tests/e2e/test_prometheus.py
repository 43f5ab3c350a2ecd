"""Prometheus scrapes probe_exporter with the relabeling of prometheus.example.yml (see conftest)."""

from __future__ import annotations

import subprocess
import time

from tests.conftest import REPO
from tests.e2e.conftest import EXAMPLE_CONFIG, Stack, require_binary

# Prometheus spreads first scrapes over the interval; the slowest job scrapes every 3 s and its
# probe takes 1.5 s, so everything has been scraped well within this.
SCRAPED_WITHIN_SECONDS = 25.0


def _wait_for_all_series(stack: Stack) -> None:
    expected = {(job.name, target) for job in stack.jobs for target in job.expect}
    expected |= {(job, stack.exporter_address) for job in stack.self_jobs}
    deadline = time.monotonic() + SCRAPED_WITHIN_SECONDS
    while True:
        have = set(stack.values("up"))
        probed = set(stack.values("probe_success"))
        if expected <= have and {e for e in expected if e[0] not in stack.self_jobs} <= probed:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not scraped after {SCRAPED_WITHIN_SECONDS}s: up has {sorted(have)}, "
                                 f"probe_success has {sorted(probed)}, expected {sorted(expected)}")
        time.sleep(0.5)


def test_prometheus_scrapes_probes_through_the_example_relabeling(prometheus_stack: Stack) -> None:
    stack = prometheus_stack
    _wait_for_all_series(stack)

    up = stack.values("up")
    down = {series: value for series, value in up.items() if value != 1}
    assert not down, f"up != 1 for {down} (a failed probe must still be a successful scrape)"

    success = stack.values("probe_success")
    for job in stack.jobs:
        # relabeling: instance is the probed target, one series per target, nothing else
        instances = {instance for name, instance in success if name == job.name}
        assert instances == set(job.expect), f"{job.name}: instance labels {instances}"
        for target, expected in job.expect.items():
            assert success[(job.name, target)] == expected, f"{job.name} {target}: probe_success"

    durations = stack.values("probe_duration_seconds")
    for job in stack.jobs:
        for target, (low, high) in job.duration.items():
            # The scrape timeout header reached the exporter: the probe ended at its deadline
            # (scrape_timeout - 0.5 s), not at the module's 10 s timeout, and before Prometheus gave up.
            assert low <= durations[(job.name, target)] <= high, (
                f"{job.name} {target}: probe_duration_seconds {durations[(job.name, target)]}")

    healthy_status = stack.values('probe_http_status_code{job="probe-http"}')
    assert 200.0 in healthy_status.values()


def test_exporter_counts_the_prometheus_probes(prometheus_stack: Stack) -> None:
    stack = prometheus_stack
    _wait_for_all_series(stack)
    deadline = time.monotonic() + 10
    while True:
        results = {s["metric"].get("result") for s in stack.query("probe_exporter_probes_total > 0")}
        if {"success", "failure"} <= results or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {"success", "failure"} <= results


def test_promtool_accepts_the_example_config() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run([promtool, "check", "config", str(EXAMPLE_CONFIG)], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

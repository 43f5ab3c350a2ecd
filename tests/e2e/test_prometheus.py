"""Prometheus scrapes probe_exporter with the relabeling of prometheus.example.yml (see conftest)."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
import yaml

from tests.deploy.dashboard import dashboard_queries
from tests.support.deploy_tools import require_binary
from tests.support.paths import REPO
from tests.support.prometheus_stack import EXAMPLE_CONFIG, IN_CI, Stack

# Prometheus spreads first scrapes over the interval; the slowest jobs scrape every 3 s and a dead SNMP
# agent holds its scrape for 2.5 s, so everything has been scraped well within this.
SCRAPED_WITHIN_SECONDS = 30.0
# Series of the scrape itself, not of the exporter's page.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
                 "scrape_series_added"}


def _expected_series(stack: Stack) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(job, instance) pairs that must have `up`, and those that must have `probe_success`."""
    up = {(job.name, target) for job in stack.jobs for target in job.expect}
    up |= {(job, stack.exporter_address) for job in stack.self_jobs}
    probed = {(job.name, target) for job in stack.jobs if not job.expects_up for target in job.expect}
    return up, probed


def wait_for_all_series(stack: Stack) -> None:
    want_up, want_probed = _expected_series(stack)
    deadline = time.monotonic() + SCRAPED_WITHIN_SECONDS
    while True:
        have = set(stack.values("up"))
        probed = set(stack.values("probe_success"))
        if want_up <= have and want_probed <= probed:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not scraped after {SCRAPED_WITHIN_SECONDS}s: missing up for "
                                 f"{sorted(want_up - have)}, probe_success for {sorted(want_probed - probed)}")
        time.sleep(0.5)


def test_prometheus_scrapes_probes_through_the_example_relabeling(prometheus_stack: Stack) -> None:
    stack = prometheus_stack
    wait_for_all_series(stack)

    up = stack.values("up")
    for job in stack.jobs:
        # relabeling: instance is the probed target, one series per target, nothing else
        instances = {instance for name, instance in up if name == job.name}
        assert instances == set(job.expect), f"{job.name}: instance labels {instances}"
        for target, expected in job.expect.items():
            # /probe: a failed probe is still a successful scrape; /snmp: a dead device is a 500 (up 0).
            want = expected if job.expects_up else 1
            assert up[(job.name, target)] == want, f"{job.name} {target}: up {up[(job.name, target)]}"
    for self_job in stack.self_jobs:
        assert up[(self_job, stack.exporter_address)] == 1, f"{self_job}: up"

    success = stack.values("probe_success")
    for job in stack.jobs:
        instances = {instance for name, instance in success if name == job.name}
        if job.expects_up:
            assert not instances, f"{job.name}: /snmp has no probe_success, got {instances}"
            continue
        assert instances == set(job.expect), f"{job.name}: probe_success instances {instances}"
        for target, expected in job.expect.items():
            assert success[(job.name, target)] == expected, f"{job.name} {target}: probe_success"

    healthy_status = stack.values('probe_http_status_code{job="probe-http"}')
    assert 200.0 in healthy_status.values()


def test_the_scrape_timeout_header_sets_the_probe_deadline(prometheus_stack: Stack) -> None:
    """Prometheus sends X-Prometheus-Scrape-Timeout-Seconds; the probe ends at that minus 0.5 s, not at
    the module's timeout (10 s for http_2xx, 5 s x 3 retries for SNMP), and before Prometheus gives up."""
    stack = prometheus_stack
    wait_for_all_series(stack)
    probe_durations = stack.values("probe_duration_seconds")
    scrape_durations = stack.values("scrape_duration_seconds")
    checked = 0
    for job in stack.jobs:
        for target, (low, high) in job.duration.items():
            durations = scrape_durations if job.expects_up else probe_durations
            assert low <= durations[(job.name, target)] <= high, (
                f"{job.name} {target}: duration {durations[(job.name, target)]}, wanted {low}..{high}")
            checked += 1
    assert checked >= 3


def test_postgresql_and_mariadb_jobs_are_scraped(prometheus_stack: Stack) -> None:
    if prometheus_stack.missing:
        assert not IN_CI
        pytest.skip(f"local database servers not running, jobs left out: {prometheus_stack.missing}")
    stack = prometheus_stack
    wait_for_all_series(stack)
    for job_name in ("probe-sql-postgresql", "probe-sql-mariadb"):
        query_success = stack.query(f'probe_sql_query_success{{job="{job_name}"}}')
        assert len(query_success) >= 3, f"{job_name}: {query_success}"
        failing = [s["metric"]["query"] for s in query_success if s["value"][1] != "1"]
        assert not failing, f"{job_name}: queries failing: {failing}"


# --- SNMP: /snmp and /probe give the same series ---------------------------------------------------


def _system_module_metric_names() -> set[str]:
    shipped = yaml.safe_load((REPO / "modules" / "snmp.yml").read_text())
    return {metric["name"] for metric in shipped["modules"]["system"]["metrics"]}


def _series_by_name(stack: Stack, job: str, instance: str) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    """{metric name: {label set without job: value}} of one target's last scrape."""
    result: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for sample in stack.query(f'{{job="{job}", instance="{instance}"}}'):
        labels: dict[str, Any] = dict(sample["metric"])
        name = labels.pop("__name__")
        labels.pop("job")
        result.setdefault(name, {})[frozenset(labels.items())] = float(sample["value"][1])
    return result


def test_snmp_endpoint_and_probe_endpoint_give_the_same_series(prometheus_stack: Stack) -> None:
    """The example's `snmp` job (/snmp, modules if_mib,system) and `probe-snmp` job (/probe, if_mib)
    on the same device: every if_mib series is the same (names, label sets, and the values of gauges)."""
    stack = prometheus_stack
    wait_for_all_series(stack)
    device = next(target for target, up in stack.job("snmp").expect.items() if up == 1)
    via_snmp = _series_by_name(stack, "snmp", device)
    via_probe = _series_by_name(stack, "probe-snmp", device)
    system_names = _system_module_metric_names()
    # What /probe adds (probe_*) and what the `system` module adds to /snmp are not compared.
    probe_names = {name for name in via_probe if name not in SCRAPE_SERIES and not name.startswith("probe_")}
    snmp_names = {name for name in via_snmp if name not in SCRAPE_SERIES and name not in system_names}
    assert probe_names == snmp_names, (f"only via /probe: {sorted(probe_names - snmp_names)}; "
                                       f"only via /snmp: {sorted(snmp_names - probe_names)}")
    assert {"ifAdminStatus", "ifOperStatus", "ifMtu", "ifHCInOctets", "snmp_scrape_duration_seconds"} <= probe_names
    assert via_snmp.keys() & system_names, "the snmp job's `system` module gave nothing"

    types = stack.metadata()
    compared_values = 0
    for name in sorted(probe_names):
        snmp_series = {labels: value for labels, value in via_snmp[name].items()
                       if ("module", "system") not in labels}  # snmp_scrape_*{module="system"}
        assert set(snmp_series) == set(via_probe[name]), f"{name}: label sets differ"
        # Gauges of the device (not the scrape's own timings and packet counts) have equal values.
        if types.get(name) == "gauge" and not name.startswith("snmp_scrape_"):
            assert snmp_series == via_probe[name], f"{name}: values differ"
            compared_values += 1
    assert compared_values >= 5
    assert len(via_probe["ifOperStatus"]) == 59  # the recording's 59 interfaces
    assert stack.values('probe_snmp_module_success{job="probe-snmp", module="if_mib"}')[("probe-snmp", device)] == 1


# --- the exporter's own metrics and the dashboard --------------------------------------------------


def test_exporter_counts_the_prometheus_probes(prometheus_stack: Stack) -> None:
    stack = prometheus_stack
    wait_for_all_series(stack)
    deadline = time.monotonic() + 10
    while True:
        results = {s["metric"].get("result") for s in stack.query("probe_exporter_probes_total > 0")}
        if {"success", "failure"} <= results or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {"success", "failure"} <= results


# rate() over [5m] needs two samples of a series: two scrapes of the slowest (3 s) job.
DASHBOARD_DATA_WITHIN_SECONDS = 20.0


def test_every_dashboard_panel_has_data(prometheus_stack: Stack) -> None:
    """Each panel query of deploy/grafana/probe_exporter.json, with its variables set to "All", returns
    series from the live Prometheus: the metric names, labels and joins the dashboard uses exist."""
    stack = prometheus_stack
    if stack.missing:
        assert not IN_CI
        pytest.skip(f"the SQL panels need the local databases; left out: {stack.missing}")
    wait_for_all_series(stack)
    queries = dashboard_queries()
    assert len(queries) >= 20
    deadline = time.monotonic() + DASHBOARD_DATA_WITHIN_SECONDS
    while True:
        empty = [query for query in queries if not stack.query(query)]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


def test_promtool_accepts_the_example_config() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run([promtool, "check", "config", str(EXAMPLE_CONFIG)], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_example_probe_job_is_exercised(prometheus_stack: Stack) -> None:
    """A job added to prometheus.example.yml gets a local target here, or is listed with the reason."""
    not_covered = {
        "probe-icmp": "ICMP needs a ping socket or CAP_NET_RAW, not guaranteed in every CI container",
        "probe-grpc": "needs a gRPC health server; the grpc prober has its own tests",
    }
    example_jobs = {job["job_name"] for job in yaml.safe_load(EXAMPLE_CONFIG.read_text())["scrape_configs"]
                    if job.get("metrics_path", "/metrics") != "/metrics"}
    covered = {job.example_job or job.name for job in prometheus_stack.jobs} | set(prometheus_stack.missing)
    assert example_jobs - covered == set(not_covered), "example jobs without an e2e target"

"""A real Prometheus scraping a real exporter, on a config derived from prometheus.example.yml.

Each job of the example file is kept as written (metrics_path, params, relabeling); `derive_job` rewrites
only its targets, the exporter address and the scrape pacing.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.support.processes import running

EXAMPLE_CONFIG = REPO / "prometheus.example.yml"
EXAMPLE_EXPORTER_ADDRESS = "localhost:10115"  # what the example's relabeling points at
# Every job scrapes this often unless its ProbeJob says otherwise: the probe deadline is then
# 2 s - the exporter's 0.5 s offset, enough for a loaded 2-core CI machine.
SCRAPE_INTERVAL = "2s"
# snmpsim answers a walk of if_mib + system in ~0.6 s; a dead agent holds the scrape for the whole deadline.
SNMP_SCRAPE_INTERVAL = "3s"
SNMP_COMMUNITY = "cisco_16_switch"  # snmpsim's community is the recording's file stem
IN_CI = bool(os.environ.get("CI"))


@dataclass
class ProbeJob:
    """One scrape job through the exporter. `expect` maps each target to its expected probe_success
    (/probe jobs) or `up` (/snmp jobs, where a failing device is an HTTP 500)."""

    name: str
    expect: dict[str, int]
    example_job: str = ""  # the prometheus.example.yml job it copies; "" = the job of the same name
    # Only for a module the example has no job for (tcp_connect): the copied job's module param.
    module: str | None = None
    scrape_interval: str | None = None
    scrape_timeout: str | None = None
    # Expected duration range per target when the deadline is what ends it: probe_duration_seconds
    # for /probe jobs, scrape_duration_seconds (the exporter's answer time) for /snmp jobs.
    duration: dict[str, tuple[float, float]] = field(default_factory=dict)
    metrics_path: str = "/probe"  # filled in from the example job

    @property
    def expects_up(self) -> bool:
        return self.metrics_path == "/snmp"


@dataclass
class Environment:
    """What the jobs probe, plus the optional database servers (None when absent, outside CI)."""

    jobs: list[ProbeJob]
    missing: list[str]


def _rewrite_exporter_address(job: dict[str, Any], exporter_address: str) -> None:
    rewritten = False
    for rule in job.get("relabel_configs", []):
        if rule.get("target_label") == "__address__" and rule.get("replacement") == EXAMPLE_EXPORTER_ADDRESS:
            rule["replacement"] = exporter_address
            rewritten = True
    if not rewritten:
        pytest.fail(f"job {job['job_name']}: no relabel rule sets __address__ to {EXAMPLE_EXPORTER_ADDRESS}")


def load_example() -> dict[str, Any]:
    example: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    return example


def derive_job(example: dict[str, Any], wanted: ProbeJob, exporter_address: str,
               targets: list[str] | None = None) -> dict[str, Any]:
    """The example's job with local targets and pacing; params and relabeling as written."""
    by_name = {job["job_name"]: job for job in example["scrape_configs"]}
    source = by_name.get(wanted.example_job or wanted.name)
    if source is None:
        pytest.fail(f"prometheus.example.yml has no job {wanted.example_job or wanted.name!r}")
    job: dict[str, Any] = copy.deepcopy(source)
    job["job_name"] = wanted.name
    job["static_configs"] = [{"targets": targets if targets is not None else list(wanted.expect)}]
    # The example's per-job pacing is for production (60 s); the test's global or the ProbeJob's applies.
    job.pop("scrape_interval", None)
    job.pop("scrape_timeout", None)
    for key in ("scrape_interval", "scrape_timeout"):
        if getattr(wanted, key):
            job[key] = getattr(wanted, key)
    if wanted.module is not None:
        job["params"] = {**job.get("params", {}), "module": [wanted.module]}
    _rewrite_exporter_address(job, exporter_address)
    wanted.metrics_path = job.get("metrics_path", "/metrics")
    return job


def self_metrics_jobs(example: dict[str, Any], exporter_address: str) -> list[dict[str, Any]]:
    """The example's jobs for the exporter's own /metrics, pointed at the test exporter."""
    jobs = []
    for source in example["scrape_configs"]:
        if source.get("metrics_path", "/metrics") == "/metrics":
            job = copy.deepcopy(source)
            job["static_configs"] = [{"targets": [exporter_address]}]
            jobs.append(job)
    return jobs


def derive_prometheus_config(example: dict[str, Any], jobs: list[ProbeJob], exporter_address: str) -> dict[str, Any]:
    """The example config with local targets; everything else (params, relabeling) as written."""
    config: dict[str, Any] = {
        "global": {**example.get("global", {}), "scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
        "scrape_configs": [derive_job(example, wanted, exporter_address) for wanted in jobs],
    }
    config["scrape_configs"] += self_metrics_jobs(example, exporter_address)
    return config


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def values(self, expr: str) -> dict[tuple[str, str], float]:
        """{(job, instance): value} of an instant query."""
        return {(s["metric"].get("job", ""), s["metric"].get("instance", "")): float(s["value"][1])
                for s in self.query(expr)}

    def metadata(self) -> dict[str, str]:
        """{metric name: type} of everything scraped."""
        with urllib.request.urlopen(f"{self.url}/api/v1/metadata", timeout=10) as response:
            body = json.load(response)
        return {name: entries[0]["type"] for name, entries in body["data"].items()}


@dataclass
class Stack(Prometheus):
    exporter_address: str = ""
    jobs: list[ProbeJob] = field(default_factory=list)
    self_jobs: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def job(self, name: str) -> ProbeJob:
        return next(job for job in self.jobs if job.name == name)


def start_prometheus(binary: str, workdir: Path, config: dict[str, Any]) -> contextlib.AbstractContextManager[Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    argv = [binary, f"--config.file={config_file}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    return running(argv, workdir / "prometheus.log", f"http://127.0.0.1:{port}/-/ready")


def prometheus_url(process: subprocess.Popen[bytes]) -> str:
    argv = [str(arg) for arg in process.args]  # type: ignore[union-attr]
    address = next(arg.split("=", 1)[1] for arg in argv if arg.startswith("--web.listen-address="))
    return f"http://{address}"


def exporter_argv(address: str, *config_files: Path) -> list[str]:
    argv = [sys.executable, "-m", "probe_exporter", "--web.listen-address", address]
    if config_files:  # the shipped modules, plus the given files (later files' auths win, as upstream)
        argv += ["--config.file", "modules/*.yml"]
        for path in config_files:
            argv += ["--config.file", str(path)]
    return argv

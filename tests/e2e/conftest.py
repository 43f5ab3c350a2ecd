"""A real Prometheus scraping a real probe_exporter, with a config derived from prometheus.example.yml.

The exporter runs as `python -m probe_exporter` (real uvicorn) on the shipped modules; Prometheus is
Debian's binary. Each job of the example file that the tests give targets to is kept exactly as written
(params, relabeling), with only its targets and the exporter address swapped for local ones; extra jobs
are copies of an example job with their own targets and scrape settings (e.g. a 2 s scrape timeout).

To cover another prober (SNMP, SQL, TCP), add its job to prometheus.example.yml, then its targets and
expected probe_success to `probe_jobs` below.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

EXAMPLE_CONFIG = REPO / "prometheus.example.yml"
EXAMPLE_EXPORTER_ADDRESS = "localhost:10115"  # what the example's relabeling points at
SCRAPE_INTERVAL = "1s"


def require_binary(name: str) -> str:
    """Skip on a laptop without the Debian package; fail in CI, where .ci/run installs it."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: .ci/run installs the Debian package prometheus")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answers(url: str, process: subprocess.Popen[bytes], log: Path, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while True:
        if process.poll() is not None:
            pytest.fail(f"{log.stem} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > end:
                pytest.fail(f"{url} did not answer within {deadline}s:\n{log.read_text()[-4000:]}")
            time.sleep(0.1)


@contextlib.contextmanager
def _running(argv: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_until_answers(ready_url, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- targets -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dead_target() -> str:
    """A loopback port nobody listens on: connection refused."""
    return f"http://127.0.0.1:{free_port()}/"


@pytest.fixture(scope="session")
def hanging_target() -> Iterator[str]:
    """Accepts connections and never answers, so only the probe's deadline ends the probe."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join(timeout=2)
    listener.close()
    for conn in held:
        conn.close()


# --- jobs ----------------------------------------------------------------------------------------


@dataclass
class ProbeJob:
    """One scrape job probing through the exporter. `expect` maps each target to its probe_success."""

    name: str
    expect: dict[str, int]
    example_job: str = ""  # the prometheus.example.yml job it copies; "" = the job of the same name
    scrape_interval: str | None = None
    scrape_timeout: str | None = None
    # Expected probe_duration_seconds range per target, when the deadline is what ends the probe.
    duration: dict[str, tuple[float, float]] = field(default_factory=dict)


@pytest.fixture(scope="session")
def probe_jobs(plain_http_target: str, dead_target: str, hanging_target: str) -> list[ProbeJob]:
    return [
        ProbeJob("probe-http", {plain_http_target + "/": 1, dead_target: 0}),
        # Prometheus sends X-Prometheus-Scrape-Timeout-Seconds: 2; the exporter subtracts its 0.5 s
        # offset, so the hanging target fails after ~1.5 s and the scrape still succeeds (up 1).
        ProbeJob("probe-http-timeout", {hanging_target: 0}, example_job="probe-http", scrape_interval="3s",
                 scrape_timeout="2s", duration={hanging_target: (1.4, 1.95)}),
    ]


def _rewrite_exporter_address(job: dict[str, Any], exporter_address: str) -> None:
    rewritten = False
    for rule in job.get("relabel_configs", []):
        if rule.get("target_label") == "__address__" and rule.get("replacement") == EXAMPLE_EXPORTER_ADDRESS:
            rule["replacement"] = exporter_address
            rewritten = True
    if not rewritten:
        pytest.fail(f"job {job['job_name']}: no relabel rule sets __address__ to {EXAMPLE_EXPORTER_ADDRESS}")


def derive_prometheus_config(example: dict[str, Any], jobs: list[ProbeJob], exporter_address: str) -> dict[str, Any]:
    """The example config with local targets; everything else (params, relabeling) as written."""
    by_name = {job["job_name"]: job for job in example["scrape_configs"]}
    config: dict[str, Any] = {
        "global": {**example.get("global", {}), "scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
        "scrape_configs": [],
    }
    for wanted in jobs:
        source = by_name.get(wanted.example_job or wanted.name)
        if source is None:
            pytest.fail(f"prometheus.example.yml has no job {wanted.example_job or wanted.name!r}")
        job = copy.deepcopy(source)
        job["job_name"] = wanted.name
        job["static_configs"] = [{"targets": list(wanted.expect)}]
        for key in ("scrape_interval", "scrape_timeout"):
            if getattr(wanted, key):
                job[key] = getattr(wanted, key)
        _rewrite_exporter_address(job, exporter_address)
        config["scrape_configs"].append(job)
    # The exporter's own metrics job: the example's, pointed at the test exporter.
    self_jobs = [job for job in example["scrape_configs"] if job.get("metrics_path", "/metrics") == "/metrics"]
    for source in self_jobs:
        job = copy.deepcopy(source)
        job["static_configs"] = [{"targets": [exporter_address]}]
        config["scrape_configs"].append(job)
    return config


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Stack:
    prometheus_url: str
    exporter_address: str
    jobs: list[ProbeJob]
    self_jobs: list[str]

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def values(self, expr: str) -> dict[tuple[str, str], float]:
        """{(job, instance): value} of an instant query."""
        return {(s["metric"].get("job", ""), s["metric"].get("instance", "")): float(s["value"][1])
                for s in self.query(expr)}


@pytest.fixture(scope="session")
def exporter_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("e2e-exporter") / "exporter.log"
    # The shipped modules (modules/*.yml): the ones prometheus.example.yml names.
    argv = [sys.executable, "-m", "probe_exporter", "--web.listen-address", address]
    with _running(argv, log, f"http://{address}/-/healthy"):
        yield address


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_binary("prometheus")


@pytest.fixture(scope="session")
def prometheus_stack(prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory, exporter_address: str,
                     probe_jobs: list[ProbeJob]) -> Iterator[Stack]:
    """Requests prometheus_binary first, so a laptop without it skips before starting the exporter."""
    binary = prometheus_binary
    workdir = tmp_path_factory.mktemp("e2e-prometheus")
    example = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config = derive_prometheus_config(example, probe_jobs, exporter_address)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [binary, f"--config.file={config_file}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    self_jobs = [job["job_name"] for job in config["scrape_configs"] if job.get("metrics_path", "/metrics") != "/probe"]
    with _running(argv, workdir / "prometheus.log", f"{url}/-/ready"):
        yield Stack(url, exporter_address, probe_jobs, self_jobs)

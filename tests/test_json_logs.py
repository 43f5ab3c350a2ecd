"""--log.format=json in a real process: every stderr line is one JSON object, after a request that raises
inside a route, after the failures libraries log themselves, and after a probe of every kind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.exporter_process import ExporterProcess, non_json_lines
from tests.support.paths import REPO
from tests.support.ports import free_port

EXTRA_MODULES = """\
modules:
  unix_connect:
    prober: unix
  http3:
    prober: http
    http:
      enable_http3: true
      enable_http2: false
"""
# Every probe gets 1.5 s (the scrape timeout minus the default offset).
SCRAPE_TIMEOUT = {"X-Prometheus-Scrape-Timeout-Seconds": "2"}


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    workdir = tmp_path_factory.mktemp("json-logs")
    extra = workdir / "extra.yml"
    extra.write_text(EXTRA_MODULES)
    env = {**os.environ, "XDG_CACHE_HOME": str(workdir / "cache")}
    command = [sys.executable, "-m", "tests.support.json_logs_app", "--log.format=json", "--log.level=debug",
               "--config.file=modules/*.yml", f"--config.file={extra}"]
    with ExporterProcess(command, cwd=REPO, env=env) as process:
        process.wait_listening()
        yield process


def _records(lines: list[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines]


def test_every_line_is_json_after_failures_and_a_probe_of_every_kind(exporter: ExporterProcess,
                                                                     plain_http_target: str) -> None:
    base = exporter.base_url
    assert httpx.get(base + "/test/raise", timeout=10).status_code == 500
    for path in ("/test/orphan-task", "/test/warn", "/test/thread"):
        assert httpx.get(base + path, timeout=10).status_code == 200
    udp_port, tcp_port = free_port(socket.SOCK_DGRAM), free_port()
    http_host_port = plain_http_target.removeprefix("http://")
    probes = [
        ("http_2xx", plain_http_target), ("http_2xx", plain_http_target + "/status/500"),
        ("http3", f"https://127.0.0.1:{udp_port}/"),
        ("tcp_connect", http_host_port), ("tcp_connect", f"127.0.0.1:{tcp_port}"),
        ("dns_udp", f"127.0.0.1:{udp_port}"), ("dns_tcp", f"127.0.0.1:{tcp_port}"),
        ("icmp", "127.0.0.1"), ("grpc_plain", f"127.0.0.1:{tcp_port}"),
        ("if_mib", f"127.0.0.1:{udp_port}"), ("unix_connect", "/nonexistent/probe.sock"),
        ("sqlite_demo", "demo"), ("postgresql", "127.0.0.1:5432"), ("mariadb", "127.0.0.1:3306"),
    ]
    for module, target in probes:
        response = httpx.get(base + "/probe", params={"module": module, "target": target}, headers=SCRAPE_TIMEOUT,
                             timeout=10)
        assert response.status_code == 200 and "probe_success" in response.text, (module, response.text)
    snmp = httpx.get(base + "/snmp", params={"module": "if_mib", "target": f"127.0.0.1:{udp_port}"},
                     headers=SCRAPE_TIMEOUT, timeout=10)
    assert snmp.status_code == 500
    assert httpx.get(base + "/probe", params={"module": "nosuch"}, timeout=10).status_code == 400

    lines = exporter.stop()
    assert non_json_lines(lines) == []
    records = _records(lines)
    by_msg = {str(record["msg"]).split("\n")[0]: record for record in records}
    route_error = by_msg["Exception in ASGI application"]
    assert route_error["logger"] == "uvicorn.error" and route_error["level"] == "error"
    assert "Traceback" in str(route_error["err"]) and "raised inside a route" in str(route_error["err"])
    orphan = by_msg["Task exception was never retrieved"]
    assert orphan["logger"] == "asyncio" and "nobody retrieves this" in str(orphan["err"])
    assert any(record.get("logger") == "py.warnings" and "a library's warning" in str(record["msg"])
               for record in records)
    assert "in a thread" in str(by_msg["Uncaught exception in thread"]["err"])
    probed = {record.get("module") for record in records if record["msg"] in ("Probe failed", "Probe succeeded")}
    failed_modules = {record.get("module") for record in records if record["msg"] == "Probe failed"}
    assert "http_2xx" in failed_modules and "tcp_connect" in failed_modules, probed


def test_startup_lines_name_the_version_and_each_config_file(exporter: ExporterProcess) -> None:
    records = _records(list(exporter.lines))
    (start,) = [record for record in records if record["msg"] == "Starting probe_exporter"]
    assert start["version"]
    loaded = {str(record["file"]): record["modules"] for record in records if record["msg"] == "Loaded config file"}
    assert loaded["modules/sql.yml"] == 3 and loaded["modules/http.yml"] == 3
    assert [count for path, count in loaded.items() if path.endswith("extra.yml")] == [2]


def test_a_config_error_at_start_is_a_json_line_too(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("modules:\n  m:\n    prober: nosuch\n")
    result = subprocess.run([sys.executable, "-m", "probe_exporter", "--log.format=json", f"--config.file={broken}",
                             "--web.listen-address=127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    record = json.loads(line)
    assert record["level"] == "error" and f"{broken}:3" in record["err"]

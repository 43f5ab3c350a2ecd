"""Every metric the alert rules and the dashboard query is one the exporter really emits: names are
collected from real probes (HTTP, HTTPS, SQLite) and the exporter's /metrics, plus the SNMP names the
shipped if_mib module defines. A renamed metric fails here instead of silently emptying a panel."""

from __future__ import annotations

import http.server
import re
import ssl
import threading
from collections.abc import Iterator

import pytest
import trustme
import yaml
from fastapi.testclient import TestClient

from probe_exporter.exporter import Exporter
from probe_exporter.selfmetrics import SelfMetrics
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.deploy.dashboard import dashboard_queries
from tests.support.deploy_tools import DEPLOY, REPO

# Prometheus' own series, and the five per-module SNMP self metrics (snmp_exporter's names; the
# SNMP prober's source is checked for them below rather than running an agent here).
PROMETHEUS_SERIES = {"up"}
SNMP_SELF_METRICS = {"snmp_scrape_walk_duration_seconds", "snmp_scrape_packets_sent", "snmp_scrape_packets_retried",
                     "snmp_scrape_pdus_returned", "snmp_scrape_duration_seconds"}

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (selectors, not functions, keywords or label names)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", expr):
        if match.group(2) is None and match.group(1) not in _KEYWORDS:
            names.add(match.group(1))
    return names


def test_metric_names_parser() -> None:
    assert metric_names('sum by (instance, phase) (rate(a_total{job=~"x|y"}[5m])) > 1 and on (job) b == 1') == \
        {"a_total", "b"}
    assert metric_names("(probe_ssl_earliest_cert_expiry - time()) < 14 * 86400") == {"probe_ssl_earliest_cert_expiry"}
    assert metric_names("count(x{a=\"{b}\"} == 0) or vector(0)") == {"x"}


def _used_names() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for query in dashboard_queries():
        for name in metric_names(query):
            used.setdefault(name, set()).add("dashboard")
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"alert {rule['alert']}")
    return used


class _TLSHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def https_target() -> Iterator[str]:
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TLSHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _page_names(text: str) -> set[str]:
    return {re.split(r"[{\s]", line, maxsplit=1)[0] for line in text.splitlines() if line and not line.startswith("#")}


@pytest.fixture(scope="module")
def emitted_names(tmp_path_factory: pytest.TempPathFactory, https_target: str) -> set[str]:
    config_dir = tmp_path_factory.mktemp("modules")
    (config_dir / "tls.yml").write_text(yaml.safe_dump({"modules": {"https_insecure": {
        "prober": "http", "timeout": "5s", "http": {"tls_config": {"insecure_skip_verify": True}}}}}))
    files = [str(REPO / "modules" / "*.yml"), str(config_dir / "tls.yml")]
    names: set[str] = set()
    with TestClient(create_app(Exporter(Settings(config_files=files)))) as client:
        probes = [("https_insecure", https_target), ("sqlite_demo", "demo")]
        for module, target in probes:
            response = client.get("/probe", params={"module": module, "target": target})
            assert response.status_code == 200, response.text
            assert "probe_success 1" in response.text, (module, response.text)
            names |= _page_names(response.text)
        names |= _page_names(client.get("/metrics").text)
    # Labelled self-metric families print nothing until their first child: take the registry's families.
    for family in SelfMetrics().registry.collect():
        names |= _sample_names(family.name, family.type)
    return names


def _sample_names(family: str, kind: str) -> set[str]:
    if kind == "histogram":
        return {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
    if kind == "counter":
        return {f"{family}_total"}
    return {family}


def _snmp_module_names() -> set[str]:
    snmp = yaml.safe_load((REPO / "modules" / "snmp.yml").read_text())
    return {metric["name"] for metric in snmp["modules"]["if_mib"]["metrics"]}


def test_snmp_self_metrics_are_the_probers() -> None:
    source = "\n".join(path.read_text() for path in (REPO / "probe_exporter" / "probers" / "snmp").glob("*.py"))
    for name in SNMP_SELF_METRICS:
        assert f'"{name}"' in source, name


def test_every_queried_metric_is_emitted(emitted_names: set[str]) -> None:
    known = emitted_names | _snmp_module_names() | SNMP_SELF_METRICS | PROMETHEUS_SERIES
    used = _used_names()
    assert len(used) > 20
    unknown = {name: sorted(where) for name, where in used.items() if name not in known}
    assert not unknown, f"queried but never emitted: {unknown}"


def test_the_probes_emit_the_key_families(emitted_names: set[str]) -> None:
    """Guards the fixture itself: the probes above really exercised TLS and SQL."""
    assert {"probe_ssl_earliest_cert_expiry", "probe_tls_version_info", "probe_http_duration_seconds",
            "probe_sql_query_success", "probe_exporter_probes_total"} <= emitted_names



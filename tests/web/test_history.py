"""The probe history (ring plus preserved failures), /logs and the landing page built on it."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from probe_exporter.config import Module
from probe_exporter.exporter import Exporter
from probe_exporter.history import ProbeHistory
from probe_exporter.logs import ProbeLog
from probe_exporter.pipeline import ProbeOutcome
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app

_MODULE = Module(prober="http")


def _outcome(probe_id: int, success: bool, target: str = "t", module_name: str = "m") -> ProbeOutcome:
    return ProbeOutcome(probe_id, module_name, target, success, 0.01, ProbeMetrics(),
                        ProbeLog(module=module_name, target=target), "" if success else "boom")


def test_ring_keeps_the_last_n_newest_first() -> None:
    history = ProbeHistory(3)
    for probe_id in range(5):
        history.add(_outcome(probe_id, True), _MODULE)
    assert [r.probe_id for r in history.records()] == [4, 3, 2]
    assert history.by_id(1) is None and history.by_id(4) is not None


def test_failures_outlive_a_flood_of_successes_but_are_capped() -> None:
    history = ProbeHistory(2)
    history.add(_outcome(0, False, target="bad"), _MODULE)
    history.add(_outcome(1, False, target="bad2"), _MODULE)
    history.add(_outcome(2, False, target="bad3"), _MODULE)
    for probe_id in range(3, 10):
        history.add(_outcome(probe_id, True), _MODULE)
    # Ring: 8, 9. Preserved failures capped at 2: the oldest failure (0) is gone.
    assert [r.probe_id for r in history.records()] == [9, 8, 2, 1]
    assert history.by_target("bad") is None
    assert history.by_target("bad2") is not None and history.by_id(2) is not None


def test_lookup_by_target_returns_the_oldest_and_filters_by_module() -> None:
    history = ProbeHistory(10)
    history.add(_outcome(0, True, target="x", module_name="a"), _MODULE)
    history.add(_outcome(1, True, target="x", module_name="b"), _MODULE)
    history.add(_outcome(2, True, target="x", module_name="b"), _MODULE)
    assert history.by_target("x").probe_id == 0  # type: ignore[union-attr]
    assert history.by_target("x", "b").probe_id == 1  # type: ignore[union-attr]
    assert history.by_target("x", "c") is None


def test_huge_results_keep_only_the_probe_summary() -> None:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.samples import Sample

    from probe_exporter import history as history_module

    outcome = _outcome(0, True)
    outcome.metrics.gauge("probe_success", "success").set(1)
    walk = Metric("ifHCInOctets", "counter", "gauge")
    walk.samples.extend(Sample("ifHCInOctets", {"ifIndex": str(i)}, i) for i in range(history_module.MAX_SAMPLES_KEPT))
    outcome.metrics.add_family(walk)
    record = ProbeHistory(5).add(outcome, _MODULE)
    assert record is not None and record.samples_dropped == history_module.MAX_SAMPLES_KEPT
    text = record.debug_text()
    assert "probe_success 1" in text and "ifHCInOctets" not in text
    assert f"# ({history_module.MAX_SAMPLES_KEPT} samples not kept in the history" in text
    small = _outcome(1, True)
    small.metrics.gauge("probe_http_status_code", "status").set(200)
    kept = ProbeHistory(5).add(small, _MODULE)
    assert kept is not None and kept.samples_dropped == 0 and "probe_http_status_code 200" in kept.debug_text()


def test_limit_zero_keeps_nothing() -> None:
    history = ProbeHistory(0)
    assert history.add(_outcome(0, False), _MODULE) is None
    assert history.records() == [] and len(history) == 0


def test_logs_endpoint_by_id_and_target(client: TestClient, plain_http_target: str) -> None:
    client.get("/probe", params={"target": plain_http_target, "module": "http_secret"})
    page = client.get("/").text
    probe_id = re.search(r'href="logs\?id=(\d+)"', page).group(1)  # type: ignore[union-attr]
    by_id = client.get("/logs", params={"id": probe_id})
    assert by_id.status_code == 200 and by_id.headers["content-type"].startswith("text/plain")
    assert by_id.text.startswith("Logs for the probe:\n") and "probe_success 1" in by_id.text
    assert "hunter2" not in by_id.text
    by_target = client.get("/logs", params={"target": plain_http_target, "module": "http_secret"})
    assert by_target.text == by_id.text


def test_logs_endpoint_errors_match_blackbox(client: TestClient) -> None:
    cases = {
        "": (400, "Probe id or target must be defined as http query parameters\n"),
        "?id=1&target=x": (400, "Probe id and target can't be defined at the same time\n"),
        "?module=m": (400, "Probe module filter only works in conjunction with target parameter\n"),
        "?id=abc": (400, "Invalid probe id\n"),
        "?id=" + "9" * 5000: (400, "Invalid probe id\n"),  # beyond Python's int-string limit (was a 500)
        "?id=" + "1" * 20: (400, "Invalid probe id\n"),  # beyond int64, as Go's ParseInt refuses it
        "?id=%C2%B2": (400, "Invalid probe id\n"),  # a Unicode digit int() refuses
        "?id=999999": (404, "Probe id not found\n"),
        "?target=nowhere": (404, "Probe target not found\n"),
    }
    for query, (status, body) in cases.items():
        response = client.get("/logs" + query)
        assert (response.status_code, response.text) == (status, body), query


def test_landing_page_shows_modules_history_and_links(client: TestClient, plain_http_target: str) -> None:
    client.get("/probe", params={"target": plain_http_target})
    client.get("/probe", params={"target": plain_http_target + "/status/503"})
    page = client.get("/").text
    for link in ('href="metrics"', 'href="config"', 'href="-/healthy"'):
        assert link in page
    assert "http_secret" in page and "tcp_like" in page and "modules.yml" in page
    assert "<strong class=\"fail\">Failure</strong>" in page and "Success" in page
    assert 'class="muted">Invalid HTTP response status code' in page  # the failure's reason
    assert page.index("/status/503") < page.index(f">{plain_http_target}<")  # newest first
    assert "hunter2" not in page
    # Air-gapped: no scripts, nothing from another origin; the one stylesheet is ours.
    assert not re.search(r"<script|<img|<iframe|url\(|@import|(href|src|action)=\"(https?:)?//", page)
    assert re.findall(r"<link[^>]*>", page) == ['<link rel="stylesheet" href="static/style.css">']
    css = client.get("/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"] == "text/css; charset=utf-8"
    assert "@media" in css.text and not re.search(r"url\(|@import", css.text)


def test_landing_page_escapes_targets(client: TestClient) -> None:
    client.get("/probe", params={"target": "http://127.0.0.1:9/<script>alert(1)</script>"})
    page = client.get("/").text
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_form_runs_a_probe_and_shows_debug_output(client: TestClient, plain_http_target: str) -> None:
    page = client.get("/", params={"module": "http_2xx", "target": plain_http_target}).text
    assert 'id="probe-status">Success' in page
    assert "Metrics that would have been returned:" in page and "probe_success 1" in page
    failed = client.get("/", params={"module": "nosuch", "target": "x"}).text
    assert "Not run:" in failed and "Unknown module" in failed


def test_history_limit_flag_is_honoured(config_file: Path, plain_http_target: str) -> None:
    exporter = Exporter(Settings(config_files=[str(config_file)], history_limit=0))
    with TestClient(create_app(exporter)) as client:
        client.get("/probe", params={"target": plain_http_target})
        assert "No probes yet." in client.get("/").text
        assert client.get("/logs", params={"id": "0"}).status_code == 404

"""/probe request handling as blackbox_exporter's handler, and the exporter's own endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from probe_exporter.exposition import TEXT_CONTENT_TYPE


def test_probe_success_against_a_real_server(client: TestClient, plain_http_target: str) -> None:
    response = client.get("/probe", params={"target": plain_http_target, "module": "http_2xx"})
    assert response.status_code == 200
    assert response.headers["content-type"] == TEXT_CONTENT_TYPE
    assert "\nprobe_success 1\n" in response.text
    assert "\nprobe_http_status_code 200\n" in response.text


def test_module_defaults_to_http_2xx(client: TestClient, plain_http_target: str) -> None:
    response = client.get("/probe", params={"target": plain_http_target})
    assert "\nprobe_success 1\n" in response.text


def test_failed_probe_is_200_with_probe_success_0(client: TestClient, plain_http_target: str) -> None:
    response = client.get("/probe", params={"target": plain_http_target + "/status/503"})
    assert response.status_code == 200
    assert "\nprobe_success 0\n" in response.text
    assert "\nprobe_http_status_code 503\n" in response.text


def test_unknown_module_is_400_and_counted(client: TestClient) -> None:
    response = client.get("/probe", params={"target": "x", "module": "nosuch"})
    assert response.status_code == 400
    assert response.text == 'Unknown module "nosuch"\n'
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "probe_exporter_module_unknown_total 1" in client.get("/metrics").text


def test_missing_target_is_400(client: TestClient) -> None:
    response = client.get("/probe", params={"module": "http_2xx"})
    assert response.status_code == 400
    assert response.text == "Target parameter is missing\n"


def test_bad_timeout_header_is_500_with_upstream_body(client: TestClient) -> None:
    response = client.get("/probe", params={"target": "x"}, headers={"X-Prometheus-Scrape-Timeout-Seconds": "abc"})
    assert response.status_code == 500
    assert response.text.startswith("Failed to parse timeout from Prometheus header: strconv.ParseFloat")


def test_hostname_conflicting_with_module_host_header_is_400(client: TestClient, plain_http_target: str) -> None:
    response = client.get("/probe", params={"target": plain_http_target, "module": "http_secret",
                                            "hostname": "other.example"})
    assert response.status_code == 400
    assert response.text == ("host header defined both in module configuration (configured.example) "
                             "and with URL-parameter 'hostname' (other.example)\n")


def test_first_query_value_wins(client: TestClient, plain_http_target: str) -> None:
    response = client.get(f"/probe?module=http_2xx&module=nosuch&target={plain_http_target}")
    assert "probe_success 1" in response.text


def test_debug_output_layout_and_hidden_secrets(client: TestClient, plain_http_target: str) -> None:
    response = client.get("/probe", params={"target": plain_http_target, "module": "http_secret", "debug": "true"})
    assert response.status_code == 200
    text = response.text
    assert text.startswith("Logs for the probe:\n")
    assert "\n\n\n\nMetrics that would have been returned:\n# HELP" in text
    assert "\n\n\n\nModule configuration:\nprober: http\n" in text
    assert "hunter2" not in text
    assert "<secret>" in text


def test_config_page_hides_secrets(client: TestClient) -> None:
    text = client.get("/config").text
    assert "hunter2" not in text and "password: <secret>" in text
    assert text.startswith("modules:\n")


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/-/healthy").text == "Healthy"
    assert client.get("/-/ready").status_code == 200


def test_reload_requires_post_and_keeps_old_config_on_error(client: TestClient, config_file: Path) -> None:
    response = client.get("/-/reload")
    assert response.status_code == 405
    assert response.text == "This endpoint requires a POST request.\n"
    config_file.write_text("modules:\n  broken:\n    prober: nosuch\n")
    response = client.post("/-/reload")
    assert response.status_code == 500
    assert response.text.startswith("failed to reload config: error parsing config file: ")
    assert f"{config_file}:3" in response.text
    assert "probe_exporter_config_last_reload_successful 0" in client.get("/metrics").text
    assert "http_2xx" in client.get("/config").text  # the old config still serves
    config_file.write_text("modules:\n  fresh:\n    prober: http\n")
    assert client.post("/-/reload").status_code == 200
    assert "fresh" in client.get("/config").text
    assert "probe_exporter_config_last_reload_successful 1" in client.get("/metrics").text


def test_self_metrics(client: TestClient, plain_http_target: str) -> None:
    client.get("/probe", params={"target": plain_http_target})
    client.get("/probe", params={"target": plain_http_target + "/status/500"})
    text = client.get("/metrics").text
    assert 'probe_exporter_probes_total{module="http_2xx",prober="http",result="success"} 1' in text
    assert 'probe_exporter_probes_total{module="http_2xx",prober="http",result="failure"} 1' in text
    assert 'probe_exporter_probe_duration_seconds_count{module="http_2xx",prober="http"} 2' in text
    assert "probe_exporter_build_info{" in text
    assert "process_resident_memory_bytes" in text
    assert "_created" not in text


def test_openmetrics_on_request(client: TestClient, plain_http_target: str) -> None:
    response = client.get("/probe", params={"target": plain_http_target},
                          headers={"Accept": "application/openmetrics-text;version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_landing_page_lists_modules(client: TestClient) -> None:
    page = client.get("/").text
    assert "http_secret" in page and "tcp_like" in page


def test_promtool_accepts_probe_and_self_metrics_pages(client: TestClient, plain_http_target: str) -> None:
    from tests.support.promtool import promtool_problems

    for params in ({"target": plain_http_target}, {"target": plain_http_target + "/status/500"},
                   {"target": "http://127.0.0.1:9/"}):
        page = client.get("/probe", params=params).text
        assert promtool_problems(page) == [], page
    assert promtool_problems(client.get("/metrics").text) == []


@pytest.mark.parametrize(("header", "expected"), [("1", "0.5"), ("", "119.5"), ("10", "5")])
def test_probe_timeout_seconds_is_the_deadline_the_probe_ran_with(client: TestClient, plain_http_target: str,
                                                                  header: str, expected: str) -> None:
    # blackbox_exporter master's TestPrometheusTimeoutHTTP: a 1s scrape timeout minus the 0.5s offset.
    module = "http_secret" if header == "10" else "http_2xx"  # http_secret's own 5s timeout is shorter
    response = client.get("/probe", params={"module": module, "target": plain_http_target},
                          headers={"X-Prometheus-Scrape-Timeout-Seconds": header} if header else {})
    lines = response.text.splitlines()
    assert "# HELP probe_timeout_seconds Returns how long the probe timeout is in seconds" in lines
    assert "# TYPE probe_timeout_seconds gauge" in lines
    assert f"probe_timeout_seconds {expected}" in lines


@pytest.mark.parametrize(("params", "headers", "status", "body"), [
    ({"module": "nope", "target": "x"}, {}, 400, 'Unknown module "nope"\n'),
    ({"module": "http_2xx"}, {}, 400, "Target parameter is missing\n"),
    ({"module": "http_2xx", "target": "x"}, {"X-Prometheus-Scrape-Timeout-Seconds": "abc"}, 500,
     'Failed to parse timeout from Prometheus header: strconv.ParseFloat: parsing "abc": invalid syntax\n'),
])
def test_requests_the_pipeline_refuses(client: TestClient, params: dict[str, str], headers: dict[str, str],
                                       status: int, body: str) -> None:
    response = client.get("/probe", params=params, headers=headers)
    assert (response.status_code, response.text) == (status, body)

"""The Grafana dashboard: valid JSON Grafana can import, every panel queries Prometheus through the
${DS_PROMETHEUS} variable, and every query is valid PromQL (checked offline by promtool)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.dashboard import (
    dashboard_queries,
    iter_panels,
    load_dashboard,
    panel_queries,
    substitute_variables,
)
from tests.support.deploy_tools import require_binary, run_checked

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

# What the dashboard promises to show: the metric each panel family is built on.
REQUIRED_METRICS = [
    "probe_success", "probe_duration_seconds", "probe_http_duration_seconds", "probe_http_status_code",
    "probe_ssl_earliest_cert_expiry", "ifHCInOctets", "ifHCOutOctets", "ifInErrors", "ifOutErrors",
    "ifOperStatus", "ifAdminStatus", "probe_sql_query_success", "probe_sql_query_duration_seconds",
    "probe_exporter_probes_total", "probe_exporter_probes_in_flight",
    "probe_exporter_config_last_reload_successful",
]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def test_dashboard_metadata(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] == 39
    assert dashboard["uid"] == "probe-exporter"
    assert dashboard["title"]
    assert dashboard["id"] is None  # an id from another Grafana would clash on import


def test_datasource_is_a_variable(dashboard: dict[str, Any]) -> None:
    variable = _variables(dashboard)["DS_PROMETHEUS"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"


@pytest.mark.parametrize("name", ["job", "instance", "exporter"])
def test_filter_variables_match_all_with_a_regex(dashboard: dict[str, Any], name: str) -> None:
    variable = _variables(dashboard)[name]
    assert variable["type"] == "query"
    assert variable["datasource"] == DATASOURCE
    assert variable["multi"] and variable["includeAll"]
    assert variable["allValue"] == ".*"
    assert variable["definition"].startswith("label_values(")


def test_every_panel_queries_prometheus_through_the_variable(dashboard: dict[str, Any]) -> None:
    panels = iter_panels(dashboard)
    assert len(panels) >= 20
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_panel_ids_are_unique_and_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    all_panels = dashboard["panels"]
    ids = [panel["id"] for panel in all_panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_variables_are_used_as_regex_matchers(dashboard: dict[str, Any]) -> None:
    """`All` resolves to `.*`, which only works behind =~ (an = matcher would match nothing)."""
    for panel in iter_panels(dashboard):
        for target in panel["targets"]:
            assert not re.search(r'(?<![=!])[=!]\s*"\$', target["expr"]), (panel["title"], target["expr"])


def test_queries_have_every_variable_substituted() -> None:
    queries = dashboard_queries()
    assert queries
    for query in queries:
        assert "$" not in query and "[[" not in query, query
    assert substitute_variables('rate(x{job=~"$job",i=~"${instance:regex}"}[$__rate_interval])') == \
        'rate(x{job=~".*",i=~".*"}[5m])'


def test_dashboard_covers_the_promised_metrics() -> None:
    text = "\n".join(dashboard_queries())
    missing = [name for name in REQUIRED_METRICS if not re.search(rf"\b{name}\b", text)]
    assert not missing


def test_every_query_is_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """promtool has no offline expression parser, but `check rules` parses each rule's expr: so every
    panel query (and every variable's selector) becomes a recording rule."""
    promtool = require_binary("promtool", "prometheus")
    rules = []
    for index, panel in enumerate(iter_panels(dashboard)):
        for number, query in enumerate(panel_queries(panel)):
            rules.append({"record": f"dashboard:panel_{index}_{number}", "expr": query,
                          "labels": {"panel": panel["title"]}})
    for variable in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable.get("definition", ""))
        if match:
            rules.append({"record": f"dashboard:variable_{variable['name']}",
                          "expr": substitute_variables(match.group(1))})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = run_checked([promtool, "check", "rules", str(path)])
    assert f"SUCCESS: {len(rules)} rules found" in output


def test_an_invalid_query_is_caught(tmp_path: Path) -> None:
    """The promtool trick above really rejects bad PromQL."""
    promtool = require_binary("promtool", "prometheus")
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "dashboard:bad", "expr": 'sum by (instance (probe_success)'}]}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0

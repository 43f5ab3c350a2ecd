"""deploy/prometheus/alerts.yml: valid for Prometheus, and every rule unit-tested by promtool with
alerts_test.yml (cases that fire and cases that must stay quiet)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deploy_tools import DEPLOY, REPO, require_binary, run_checked

RULES_DIR = DEPLOY / "prometheus"
ALERTS = RULES_DIR / "alerts.yml"
ALERTS_TEST = RULES_DIR / "alerts_test.yml"


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alert_cases() -> list[dict[str, Any]]:
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    return [case for test in tests for case in test["alert_rule_test"]]


def test_promtool_check_rules() -> None:
    promtool = require_binary("promtool", "prometheus")
    output = run_checked([promtool, "check", "rules", str(ALERTS)])
    assert f"SUCCESS: {len(_rules())} rules found" in output


def test_promtool_unit_tests_pass() -> None:
    promtool = require_binary("promtool", "prometheus")
    output = run_checked([promtool, "test", "rules", ALERTS_TEST.name], cwd=RULES_DIR)
    assert "SUCCESS" in output


def test_unit_tests_fail_when_a_rule_changes(tmp_path: Path) -> None:
    """The unit tests pin the rules: a longer `for:` on ProbeFailed must make them fail."""
    promtool = require_binary("promtool", "prometheus")
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    text = ALERTS.read_text()
    changed = re.sub(r"(expr: probe_success == 0\n\s+for:) 5m", r"\1 15m", text)
    assert changed != text
    (tmp_path / ALERTS.name).write_text(changed)
    result = subprocess.run([promtool, "test", "rules", ALERTS_TEST.name], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "alertname: ProbeFailed" in result.stdout + result.stderr


@pytest.mark.parametrize("alert", [rule["alert"] for rule in _rules() if "alert" in rule])
def test_every_alert_has_firing_and_quiet_cases(alert: str) -> None:
    cases = [case for case in _alert_cases() if case["alertname"] == alert]
    assert any(case.get("exp_alerts") for case in cases), f"no case where {alert} fires"
    assert any(not case.get("exp_alerts") for case in cases), f"no case where {alert} stays quiet"


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule.get("alert", rule.get("record")))
def test_alerts_carry_severity_and_text(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert rule.get("for"), "every alert waits before firing, so one bad scrape pages nobody"


def test_exporter_down_matches_the_example_job_names() -> None:
    """ProbeExporterDown selects jobs by name; the shipped Prometheus example must follow that naming."""
    rule = next(rule for rule in _rules() if rule.get("alert") == "ProbeExporterDown")
    pattern = re.search(r'job=~"([^"]+)"', rule["expr"])
    assert pattern is not None
    config = yaml.safe_load((REPO / "prometheus.example.yml").read_text())
    snmp_rule = next(rule for rule in _rules() if rule.get("alert") == "SNMPScrapeFailed")
    snmp_pattern = re.search(r'job=~"([^"]+)"', snmp_rule["expr"])
    assert snmp_pattern is not None
    # /snmp jobs keep snmp_exporter's semantics (a failing device makes up 0): SNMPScrapeFailed covers them.
    jobs = [job["job_name"] for job in config["scrape_configs"] if job.get("metrics_path") != "/snmp"]
    snmp_jobs = [job["job_name"] for job in config["scrape_configs"] if job.get("metrics_path") == "/snmp"]
    assert jobs and snmp_jobs
    for job in jobs:
        assert re.fullmatch(pattern.group(1), job), job
    for job in snmp_jobs:
        assert re.fullmatch(snmp_pattern.group(1), job), job

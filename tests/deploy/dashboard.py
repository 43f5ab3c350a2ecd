"""The Grafana dashboard's PromQL, ready to evaluate against a plain Prometheus.

`dashboard_queries()` is shared with the end-to-end tests, which run every query against a live
Prometheus scraping the exporter; the deploy tests check the dashboard's structure and syntax.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "probe_exporter.json"

# Grafana's built-in interval variables need a duration, not a regex.
_INTERVAL_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
# $name, ${name}, ${name:format} and the deprecated [[name]].
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        dashboard: dict[str, Any] = json.load(handle)
    return dashboard


def iter_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows; rows themselves excluded."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def substitute_variables(expr: str) -> str:
    """Template variables replaced the way "All" resolves them: regex variables by `.*`, interval
    variables by a fixed duration."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return _INTERVAL_VARIABLES.get(name, ".*")

    return _VARIABLE.sub(replace, expr)


def panel_queries(panel: dict[str, Any]) -> list[str]:
    return [substitute_variables(target["expr"]) for target in panel.get("targets", []) if target.get("expr")]


def dashboard_queries(path: Path = DASHBOARD) -> list[str]:
    """Every panel query of the dashboard, variables substituted, in panel order."""
    return [query for panel in iter_panels(load_dashboard(path)) for query in panel_queries(panel)]

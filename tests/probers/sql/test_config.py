"""The sql: block and collector files: sql_exporter's files load unmodified, mistakes fail the load
with file:line:key, and credentials never show on /config."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
import yaml

from probe_exporter.config import ConfigError
from probe_exporter.config.loader import load_config
from probe_exporter.config.render import config_as_yaml
from probe_exporter.config.sql import load_collector_file
from tests.support.paths import REPO
from tests.support.sql_probe import DATA

# Collector files in sql_exporter's format: our own test files and the shipped ones.
COLLECTOR_FILES = sorted(glob.glob(str(DATA / "collectors" / "*.yml"))
                         + glob.glob(str(REPO / "modules" / "sql" / "*.yml")))


@pytest.mark.parametrize("path", COLLECTOR_FILES, ids=lambda p: Path(p).name)
def test_sql_exporter_collector_files_load_unmodified(path: str) -> None:
    collector = load_collector_file(path)
    raw = yaml.safe_load(Path(path).read_text())
    assert collector.collector_name == raw["collector_name"]
    assert [m.metric_name for m in collector.metrics] == [m["metric_name"] for m in raw["metrics"]]
    # every metric is attached to exactly one query plan
    assert sum(len(plan.metrics) for plan in collector.plans()) == len(raw["metrics"])


def test_format_coverage_file_keeps_every_key() -> None:
    collector = load_collector_file(str(DATA / "collectors" / "format_coverage.collector.yml"))
    by_name = {metric.metric_name: metric for metric in collector.metrics}
    assert by_name["coverage_rows"].static_labels == {"env": "test"}
    assert by_name["coverage_events"].value_label == "column"
    assert by_name["coverage_events"].values == ["amount", "weight"]
    assert by_name["coverage_up"].static_value == 1
    assert by_name["coverage_stamped"].timestamp_value == "stamp"
    assert by_name["coverage_stamped"].no_prepared_statement is True
    # the two metrics on query_ref coverage_kinds share one query plan
    assert any({m.metric_name for m in plan.metrics} == {"coverage_rows", "coverage_events"}
               for plan in collector.plans())


def test_shipped_modules_load() -> None:
    config = load_config([str(REPO / "modules" / "sql.yml")])
    assert {"sqlite_demo", "postgresql", "mariadb"} <= set(config.modules)
    for name in ("sqlite_demo", "postgresql", "mariadb"):
        sql = config.modules[name].sql
        assert sql is not None and sql.loaded_collectors, name


def _module(tmp_path: Path, sql_block: str, collector: str | None = None) -> Path:
    if collector is not None:
        (tmp_path / "c.collector.yml").write_text(collector)
    path = tmp_path / "sql.yml"
    path.write_text("modules:\n  m:\n    prober: sql\n    sql:\n" + sql_block)
    return path


GOOD_COLLECTOR = """collector_name: c
metrics:
  - metric_name: up_rows
    type: gauge
    help: x
    values: [n]
    query: SELECT 1 AS n
"""


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config([str(path)])
    return info.value


@pytest.mark.parametrize(("collector", "line", "message"), [
    (GOOD_COLLECTOR.replace("    help: x\n", "    help: x\n    helpp: y\n"), 6, "field helpp not found"),
    (GOOD_COLLECTOR.replace("up_rows", "up-rows"), 3, "invalid metric name 'up-rows'"),
    (GOOD_COLLECTOR.replace("type: gauge", "type: histogram"), 4, "unsupported metric type"),
    (GOOD_COLLECTOR.replace("    query: SELECT 1 AS n\n", "    query_ref: nope\n"), 1, "query_ref 'nope' not found"),
    (GOOD_COLLECTOR.replace("values: [n]", "values: [a, b]"), 3, "value_label must be defined"),
    (GOOD_COLLECTOR.replace("values: [n]", "values: [n]\n    key_labels: [n]"), 3, "used both as key and value"),
    (GOOD_COLLECTOR.replace("values: [n]", "values: [n]\n    key_labels: [job]"), 3, "'job'"),
    (GOOD_COLLECTOR.replace("values: [n]", "values: [n]\n    key_labels: [__x]"), 3, "invalid label name"),
    (GOOD_COLLECTOR.replace("values: [n]", "values: [n]\n    static_value: 1"), 3, "exactly one of values"),
    (GOOD_COLLECTOR.replace("up_rows", "probe_success"), None, "reserved"),
    ("collectors:\n  - collector_name: c\n", 1, "one collector"),
])
def test_collector_file_errors_point_at_file_line_key(tmp_path: Path, collector: str, line: int | None,
                                                      message: str) -> None:
    err = _error(_module(tmp_path, "      driver: sqlite\n      collector_files: [c.collector.yml]\n", collector))
    assert message in str(err)
    if line is not None:
        assert err.file is not None and err.file.endswith("c.collector.yml")
        assert err.line == line


def test_module_errors(tmp_path: Path) -> None:
    err = _error(_module(tmp_path, "      driver: postgresql\n      auth: {username: u, password: pw}\n"
                                   "      collector_files: [c.collector.yml]\n", GOOD_COLLECTOR))
    assert "needs target_allow" in str(err) and "sql.yml:4: modules.m.sql:" in str(err)
    assert "pw" not in str(err).replace("password", "")

    err = _error(_module(tmp_path, "      driver: oracle\n"))
    assert "modules.m.sql.driver" in str(err)

    err = _error(_module(tmp_path, "      driver: sqlite\n      collector_files: [missing*.yml]\n"))
    assert "no collector file matches" in str(err)

    err = _error(_module(tmp_path, "      driver: sqlite\n      collector_files: [c.collector.yml]\n"
                                   "      collector_names: [nope]\n", GOOD_COLLECTOR))
    assert "unknown collector 'nope'" in str(err)

    path = tmp_path / "sql.yml"
    path.write_text("modules:\n  m:\n    prober: sql\n")
    assert "needs a sql: block" in str(_error(path))


def test_same_metric_in_two_collectors_must_match(tmp_path: Path) -> None:
    other = GOOD_COLLECTOR.replace("collector_name: c", "collector_name: d").replace("type: gauge", "type: counter")
    (tmp_path / "d.collector.yml").write_text(other)
    err = _error(_module(tmp_path, "      driver: sqlite\n      collector_files: ['*.collector.yml']\n",
                         GOOD_COLLECTOR))
    assert "defined differently in collectors c and d" in str(err)


def test_inline_collectors_and_errors_in_them(tmp_path: Path) -> None:
    block = ("      driver: sqlite\n      collectors:\n        - collector_name: inline\n          metrics:\n"
             "            - {metric_name: a, type: gauge, help: h, values: [n], query: SELECT 1 AS n}\n")
    config = load_config([str(_module(tmp_path, block))])
    assert [c.collector_name for c in config.modules["m"].sql.loaded_collectors] == ["inline"]
    err = _error(_module(tmp_path, block.replace("type: gauge", "type: gauge, extra: 1")))
    assert err.line == 9 and "modules.m.sql.collectors.0.metrics.0.extra" in str(err)


def test_config_page_masks_credentials(tmp_path: Path) -> None:
    path = _module(tmp_path, "      driver: postgresql\n      dsn: postgresql://u:dsn-pw-123@{host}:{port}/db\n"
                             "      auth: {username: probe, password: auth-pw-456}\n"
                             "      target_allow: [127.0.0.1]\n      collector_files: [c.collector.yml]\n",
                   GOOD_COLLECTOR)
    page = config_as_yaml(load_config([str(path)]))
    assert "dsn-pw-123" not in page and "auth-pw-456" not in page
    assert "u:<secret>@{host}" in page and "<secret>" in page


def test_password_like_dsn_parameters_and_options_are_credentials(tmp_path: Path) -> None:
    block = ("      driver: postgresql\n      dsn: postgresql://{host}:{port}/db?sslmode=require&sslpassword=dsn-q-789\n"
             "      options: {sslpassword: opt-pw-012, sslmode: verify-full}\n"
             "      collector_files: [c.collector.yml]\n")
    # Credentials in either place need target_allow, as auth: does.
    assert "needs target_allow" in str(_error(_module(tmp_path, block, GOOD_COLLECTOR)))
    page = config_as_yaml(load_config([str(_module(tmp_path, block + "      target_allow: [127.0.0.1]\n"))]))
    assert "dsn-q-789" not in page and "opt-pw-012" not in page
    assert "sslmode=require&sslpassword=<secret>" in page and "sslmode: verify-full" in page


def test_the_modules_allowed_targets_serve_as_target_allow(tmp_path: Path) -> None:
    """One allowlist model: `allowed_targets` on a SQL module with credentials is its target_allow."""
    (tmp_path / "c.collector.yml").write_text(GOOD_COLLECTOR)
    path = tmp_path / "sql.yml"
    path.write_text("modules:\n  m:\n    prober: sql\n    allowed_targets: [10.0.0.0/8]\n    sql:\n"
                    "      driver: postgresql\n      auth: {username: u, password: p}\n"
                    "      collector_files: [c.collector.yml]\n")
    sql = load_config([str(path)]).modules["m"].sql
    assert sql is not None and sql.target_allow == ["10.0.0.0/8"]
    policy = sql.target_allow_policy()
    assert policy.allows("10.1.2.3", "sql") and not policy.allows("11.0.0.1", "sql")

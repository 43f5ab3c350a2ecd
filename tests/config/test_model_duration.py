"""prometheus/common model.Duration for sql_exporter's durations (`min_interval: 1d` loads);
blackbox's durations stay Go's time.ParseDuration (`timeout: 1d` is refused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe_exporter.config import ConfigError, load_config
from probe_exporter.config.types import format_model_duration, parse_model_duration


@pytest.mark.parametrize(("text", "seconds", "shown"), [
    ("0", 0.0, "0s"), ("0s", 0.0, "0s"), ("1d", 86400.0, "1d"), ("1h30m", 5400.0, "1h30m"),
    ("500ms", 0.5, "500ms"), ("1y", 365 * 86400.0, "1y"), ("2w", 14 * 86400.0, "2w"), ("90d", 90 * 86400.0, "90d"),
    ("1w1d", 8 * 86400.0, "8d"), ("1y2w3d4h5m6s7ms", 382 * 86400 + 4 * 3600 + 5 * 60 + 6.007, "382d4h5m6s7ms"),
    ("90s", 90.0, "1m30s"),
])
def test_model_durations(text: str, seconds: float, shown: str) -> None:
    assert parse_model_duration(text) == pytest.approx(seconds)
    assert format_model_duration(parse_model_duration(text)) == shown


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty duration string"), ("1.5h", 'not a valid duration string: "1.5h"'),
    ("1m1h", 'not a valid duration string: "1m1h"'), ("10", 'not a valid duration string: "10"'),
    ("1us", 'not a valid duration string: "1us"'), ("-1s", 'not a valid duration string: "-1s"'),
    ("300y", "duration out of range"),
])
def test_bad_model_durations(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_model_duration(text)


def write_sql(tmp_path: Path, min_interval: str, timeouts: str = "") -> Path:
    (tmp_path / "app.collector.yml").write_text(
        f"collector_name: app\nmin_interval: {min_interval}\nmetrics:\n  - metric_name: n\n    type: gauge\n"
        "    help: n\n    values: [n]\n    query: SELECT 1 AS n\n")
    path = tmp_path / "sql.yml"
    path.write_text("modules:\n  lite:\n    prober: sql\n    sql:\n      driver: sqlite\n"
                    f"      target_allow_paths: ['*.db']\n{timeouts}      collector_files: [app.collector.yml]\n")
    return path


def test_min_interval_of_a_day_loads(tmp_path: Path) -> None:
    config = load_config([str(write_sql(tmp_path, "1d", "      query_timeout: 1m30s\n      connect_timeout: 2s\n"))])
    sql = config.modules["lite"].sql
    assert sql is not None
    assert sql.query_timeout == 90.0 and sql.connect_timeout == 2.0
    assert sql.model_dump(mode="json")["query_timeout"] == "1m30s"
    (collector,) = sql.loaded_collectors
    assert collector.min_interval == 86400.0


def test_go_only_duration_in_a_collector_is_refused_with_file_and_line(tmp_path: Path) -> None:
    path = write_sql(tmp_path, "1.5h")
    with pytest.raises(ConfigError) as caught:
        load_config([str(path)])
    assert f"{tmp_path / 'app.collector.yml'}:2:" in str(caught.value)
    assert 'not a valid duration string: "1.5h"' in str(caught.value)


def test_blackbox_timeout_stays_go_time_duration(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("modules:\n  m:\n    prober: http\n    timeout: 1d\n  n:\n    prober: http\n    timeout: 1.5s\n")
    with pytest.raises(ConfigError, match='time: invalid duration "1d"'):
        load_config([str(path)])
    path.write_text("modules:\n  n:\n    prober: http\n    timeout: 1.5s\n")
    assert load_config([str(path)]).modules["n"].timeout == 1.5

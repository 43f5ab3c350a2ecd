"""Process logs: one info line per failed probe with module, target, probe_id, result and reason;
every step at debug; logfmt or JSON lines."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from probe_exporter import logs


@pytest.fixture()
def log_output() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("probe_exporter")
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    yield stream, handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)
    logger.propagate = old_propagate


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_failed_probe_is_one_info_line_in_logfmt(client: TestClient, plain_http_target: str,
                                                 log_output: tuple[io.StringIO, logging.Handler]) -> None:
    stream, handler = log_output
    handler.setFormatter(logs.LogfmtFormatter())
    logging.getLogger("probe_exporter").setLevel(logging.INFO)
    client.get("/probe", params={"target": plain_http_target})  # success: silent at info
    assert _lines(stream) == []
    client.get("/probe", params={"target": plain_http_target + "/status/503"})
    lines = _lines(stream)
    assert len(lines) == 1, lines
    line = lines[0]
    assert re.match(r"^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info msg=\"Probe failed\" ", line)
    assert " module=http_2xx " in line and f" target={plain_http_target}/status/503 " in line
    assert re.search(r" probe_id=\d+ ", line) and " result=failure " in line
    assert 'reason="Invalid HTTP response status code' in line


def test_json_lines_carry_the_same_fields(client: TestClient, plain_http_target: str,
                                          log_output: tuple[io.StringIO, logging.Handler]) -> None:
    stream, handler = log_output
    handler.setFormatter(logs.JSONFormatter())
    logging.getLogger("probe_exporter").setLevel(logging.INFO)
    client.get("/probe", params={"target": "http://127.0.0.1:9/"})
    (record,) = [json.loads(line) for line in _lines(stream)]
    assert record["level"] == "info" and record["msg"] == "Probe failed"
    assert record["module"] == "http_2xx" and record["target"] == "http://127.0.0.1:9/"
    assert record["result"] == "failure" and isinstance(record["probe_id"], int)
    assert record["reason"].startswith("Error for HTTP request: ")  # the cause, not a later consequence


def test_debug_level_logs_every_step_with_the_probe_id(client: TestClient, plain_http_target: str,
                                                       log_output: tuple[io.StringIO, logging.Handler]) -> None:
    stream, handler = log_output
    handler.setFormatter(logs.JSONFormatter())
    logging.getLogger("probe_exporter").setLevel(logging.DEBUG)
    client.get("/probe", params={"target": plain_http_target, "module": "http_secret"})
    records = [json.loads(line) for line in _lines(stream)]
    steps = [r for r in records if r["level"] == "debug"]
    assert len(steps) >= 4, records  # beginning, resolving, request, status, success ...
    assert {r["msg"] for r in steps} >= {"Beginning probe", "Probe succeeded"}
    assert len({r["probe_id"] for r in steps}) == 1
    assert all(r["module"] == "http_secret" for r in steps), steps
    assert steps[0]["target"] == plain_http_target
    assert "hunter2" not in stream.getvalue()


def test_refused_target_is_logged_at_info(tmp_path: object, log_output: tuple[io.StringIO, logging.Handler]) -> None:
    from pathlib import Path

    from probe_exporter.exporter import Exporter
    from probe_exporter.settings import Settings
    from probe_exporter.web.app import create_app

    stream, handler = log_output
    handler.setFormatter(logs.LogfmtFormatter())
    logging.getLogger("probe_exporter").setLevel(logging.INFO)
    path = Path(str(tmp_path)) / "m.yml"
    path.write_text("modules:\n  guarded:\n    prober: tcp\n    allowed_targets: ['10.0.0.0/8']\n")
    with TestClient(create_app(Exporter(Settings(config_files=[str(path)])))) as client:
        assert client.get("/probe", params={"module": "guarded", "target": "127.0.0.1:1"}).status_code == 403
    (line,) = [line for line in _lines(stream) if "Target not allowed" in line]
    assert " module=guarded target=127.0.0.1:1 result=denied " in line and "reason=" in line

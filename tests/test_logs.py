"""The per-probe log: kept as entries, formatted on demand in blackbox's logfmt layout."""

from __future__ import annotations

import logging
import re
import sys

import pytest

from probe_exporter import logs

LINE = re.compile(r"^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(\w+) msg=(.*)$")


@pytest.mark.parametrize(("value", "text"), [
    ("plain", "plain"), ("", '""'), ("two words", '"two words"'), ("a=b", '"a=b"'), ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'), ("tab\there", '"tab\\there"'), ("bell\x07", '"bell\\u0007"'),
    ("ünïcode", "ünïcode"), (0.25, "0.25"), (True, "True"), (None, "None"),
])
def test_logfmt_values_are_quoted_only_when_needed(value: object, text: str) -> None:
    assert logs._logfmt_value(value) == text


def test_probe_log_text_keeps_order_context_and_levels() -> None:
    log = logs.ProbeLog(module="http_2xx", target="example.com")
    log.forward_context["probe_id"] = 7
    log.debug("Making HTTP request", url="http://example.com/")
    log.info("Received redirect", location="/next page")
    log.warn("Odd", detail="x")
    log.error("Error for HTTP request", err="connection refused")
    lines = log.text().splitlines()
    assert [LINE.match(line).group(1) for line in lines] == ["debug", "info", "warn", "error"]  # type: ignore[union-attr]
    assert lines[0].endswith('msg="Making HTTP request" module=http_2xx target=example.com url=http://example.com/')
    assert lines[1].endswith('location="/next page"')
    assert "probe_id" not in log.text()  # the process log's field, not the debug page's
    assert log.first_error == log.last_error == "Error for HTTP request: connection refused"


def test_probe_log_forwards_every_line_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    log = logs.ProbeLog(module="m", target="t")
    log.forward_context["probe_id"] = 3
    with caplog.at_level(logging.DEBUG, logger="probe_exporter"):
        log.info("Beginning probe", probe="http")
        log.error("Probe failed", err="boom")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.DEBUG, "Beginning probe"),
                                                                      (logging.DEBUG, "Probe failed")]
    assert caplog.records[1].fields == {"module": "m", "target": "t", "probe_id": 3, "err": "boom"}  # type: ignore[attr-defined]


def test_worker_field_follows_msg_on_every_process_line() -> None:
    record = logging.LogRecord("probe_exporter", logging.INFO, __file__, 1, "Listening on", None, None)
    record.fields = {"address": ":10115"}
    assert "worker" not in logs.LogfmtFormatter().format(record)
    logs.process_fields["worker"] = 1
    try:
        assert 'msg="Listening on" worker=1 address=:10115' in logs.LogfmtFormatter().format(record)
        assert '"msg": "Listening on", "worker": 1, "address"' in logs.JSONFormatter().format(record)
    finally:
        logs.process_fields.clear()


@pytest.mark.parametrize("formatter", [logs.LogfmtFormatter(), logs.JSONFormatter()])
def test_a_library_record_with_a_traceback_is_one_line(formatter: logging.Formatter) -> None:
    try:
        raise RuntimeError("first\nsecond")
    except RuntimeError:
        record = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "Task exception was never retrieved\n%s",
                                   ("future: <Task>",), sys.exc_info())
    line = formatter.format(record)
    assert "\n" not in line
    assert "asyncio" in line and "Traceback" in line and "future: <Task>" in line

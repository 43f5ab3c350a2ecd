"""Process logging (logfmt or JSON lines) and the per-probe log that `debug=true` shows."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}

logger = logging.getLogger("probe_exporter")


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\\') or any(ord(c) < 32 for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _timestamp(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def _level_name(record: logging.LogRecord) -> str:
    return {"WARNING": "warn", "CRITICAL": "error"}.get(record.levelname, record.levelname.lower())


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {"time": _timestamp(record.created), "level": _level_name(record),
                                  "msg": record.getMessage()}
        fields.update(getattr(record, "fields", {}))
        if record.exc_info:
            fields["err"] = self.formatException(record.exc_info).replace("\n", " | ")
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {"time": _timestamp(record.created), "level": _level_name(record),
                                  "msg": record.getMessage()}
        fields.update(getattr(record, "fields", {}))
        if record.exc_info:
            fields["err"] = self.formatException(record.exc_info)
        return json.dumps(fields, default=str, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger("probe_exporter")
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    root.propagate = False
    # uvicorn's access log would add a line per scrape; its errors still go to stderr.
    logging.getLogger("uvicorn.access").disabled = True


def log(level: int, msg: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})


class ProbeLog:
    """Collects one probe's log lines for debug output and history; forwards them to the process log
    at debug level (a failed probe gets one info line with its reason, written by the runner)."""

    __slots__ = ("context", "first_error", "forward_context", "last_error", "lines")

    def __init__(self, **context: Any) -> None:
        self.context = context
        # Fields only the process log gets (probe_id), so the debug text keeps blackbox's layout.
        self.forward_context: dict[str, Any] = {}
        self.lines: list[str] = []
        self.last_error = ""
        # The first error is usually the cause (later ones are consequences, as in blackbox's HTTP prober).
        self.first_error = ""

    def _emit(self, level: int, msg: str, fields: dict[str, Any]) -> None:
        all_fields = {**self.context, **fields}
        line = {"time": _timestamp(time.time()), "level": logging.getLevelName(level).lower().replace(
            "warning", "warn"), "msg": msg, **all_fields}
        self.lines.append(" ".join(f"{key}={_logfmt_value(value)}" for key, value in line.items()))
        if logger.isEnabledFor(logging.DEBUG):
            logger.log(logging.DEBUG, msg, extra={"fields": {**self.context, **self.forward_context, **fields}})

    def debug(self, msg: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, msg, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._emit(logging.INFO, msg, fields)

    def warn(self, msg: str, **fields: Any) -> None:
        self._emit(logging.WARNING, msg, fields)

    def error(self, msg: str, **fields: Any) -> None:
        """A reason the probe failed; the last one becomes the failure reason."""
        self.last_error = msg + (f": {fields['err']}" if "err" in fields else "")
        self.first_error = self.first_error or self.last_error
        self._emit(logging.ERROR, msg, fields)

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)

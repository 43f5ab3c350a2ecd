"""Process logging (logfmt or JSON lines) and the per-probe log that `debug=true` shows."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}

logger = logging.getLogger("probe_exporter")

# Fields every process log line carries after `msg`: `worker` in a `--web.workers` worker process.
process_fields: dict[str, Any] = {}


# A logfmt value needs quoting when it is empty or holds a space, `=`, `"`, a backslash or a control char.
_NEEDS_QUOTING = re.compile(r'[ ="\\\x00-\x1f]').search


def _logfmt_value(value: Any) -> str:
    text = value if type(value) is str else str(value)
    if not text or _NEEDS_QUOTING(text) is not None:
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
                                  "msg": record.getMessage(), **process_fields}
        fields.update(getattr(record, "fields", {}))
        if record.exc_info:
            fields["err"] = self.formatException(record.exc_info).replace("\n", " | ")
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {"time": _timestamp(record.created), "level": _level_name(record),
                                  "msg": record.getMessage(), **process_fields}
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


# `--log.prober` (blackbox 0.28's independent scrape logger): probe log lines at or above this level
# go to stderr at their own level, whatever --log.level says. None (no flag): they go to the process
# log at debug level, so --log.level=debug shows them.
prober_level: int | None = None
prober_logger = logging.getLogger("probe_exporter.prober")


def setup_prober_logging(level: str, fmt: str = "logfmt") -> None:
    global prober_level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else LogfmtFormatter())
    prober_logger.handlers[:] = [handler]
    prober_logger.setLevel(LEVELS[level])
    prober_logger.propagate = False
    prober_level = LEVELS[level]


def log(level: int, msg: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})


_PROBE_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error"}


def scrub(text: str, secrets: frozenset[str]) -> str:
    """`text` with every secret value replaced by <secret>."""
    for value in secrets:
        if value in text:
            text = text.replace(value, "<secret>")
    return text


_USERINFO_PASSWORD = re.compile(r"(//[^/@:\s]*:)[^/@\s]*@")


def mask_target(target: str) -> str:
    """The target as logs and pages show it: a URL's `user:password@` becomes `user:<secret>@`."""
    return _USERINFO_PASSWORD.sub(r"\1<secret>@", target) if "@" in target else target


class ProbeLog:
    """Collects one probe's log lines for debug output and history; forwards them to the process log
    at debug level (a failed probe gets one info line with its reason, written by the runner)."""

    __slots__ = ("context", "entries", "first_error", "forward_context", "last_error", "secrets")

    def __init__(self, secrets: frozenset[str] = frozenset(), **context: Any) -> None:
        self.context = context
        # The module's secret values: scrubbed from `err` fields, whose text comes from libraries.
        self.secrets = secrets
        # Fields only the process log gets (probe_id), so the debug text keeps blackbox's layout.
        self.forward_context: dict[str, Any] = {}
        # (time, level, msg, fields): formatted only when someone reads `text()` (debug output, history),
        # which most probes never do.
        self.entries: list[tuple[float, int, str, dict[str, Any]]] = []
        self.last_error = ""
        # The first error is usually the cause (later ones are consequences, as in blackbox's HTTP prober).
        self.first_error = ""

    def _emit(self, level: int, msg: str, fields: dict[str, Any]) -> None:
        if self.secrets and "err" in fields:
            fields["err"] = scrub(str(fields["err"]), self.secrets)
        self.entries.append((time.time(), level, msg, fields))
        if prober_level is not None:
            if level >= prober_level:
                prober_logger.log(level, msg, extra={"fields": {**self.context, **self.forward_context, **fields}})
        elif logger.isEnabledFor(logging.DEBUG):
            logger.log(logging.DEBUG, msg, extra={"fields": {**self.context, **self.forward_context, **fields}})

    def debug(self, msg: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, msg, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._emit(logging.INFO, msg, fields)

    def warn(self, msg: str, **fields: Any) -> None:
        self._emit(logging.WARNING, msg, fields)

    def error(self, msg: str, **fields: Any) -> None:
        """A reason the probe failed; the first one becomes the failure reason."""
        self._emit(logging.ERROR, msg, fields)
        self.last_error = msg + (f": {fields['err']}" if "err" in fields else "")
        self.first_error = self.first_error or self.last_error

    def text(self) -> str:
        out: list[str] = []
        for created, level, msg, fields in self.entries:
            line = {"time": _timestamp(created), "level": _PROBE_LEVEL_NAMES[level], "msg": msg,
                    **self.context, **fields}
            out.append(" ".join(f"{key}={_logfmt_value(value)}" for key, value in line.items()) + "\n")
        return "".join(out)

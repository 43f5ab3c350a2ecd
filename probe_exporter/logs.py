"""Process logging (logfmt or JSON lines) and the per-probe log that `debug=true` shows."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from types import TracebackType
from typing import Any

from probe_exporter.masking import mask

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


def _masked(value: Any, secrets: frozenset[str] = frozenset()) -> Any:
    """A field value as it may be shown: numbers as they are, anything else as masked text."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return mask(value if type(value) is str else str(value), secrets)


def _record_fields(formatter: logging.Formatter, record: logging.LogRecord) -> dict[str, Any]:
    """One line's fields. A record from a library (uvicorn, asyncio, warnings) names its logger; a
    traceback, a stack and a message of several lines (asyncio's) stay inside their field."""
    fields: dict[str, Any] = {"time": _timestamp(record.created), "level": _level_name(record),
                              "msg": record.getMessage(), **process_fields}
    if record.name != "probe_exporter" and not record.name.startswith("probe_exporter."):
        fields["logger"] = record.name
    fields.update(getattr(record, "fields", {}))
    if record.exc_info:
        fields["err"] = formatter.formatException(record.exc_info)
    elif record.exc_text:
        fields["err"] = record.exc_text
    if record.stack_info:
        fields["stack"] = formatter.formatStack(record.stack_info)
    # The safety net for every process log line: no URL password or password-like parameter shows.
    return {key: _masked(value) for key, value in fields.items()}


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = _record_fields(self, record)
        for key in ("err", "stack"):
            if key in fields:
                fields[key] = fields[key].replace("\n", " | ")
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_record_fields(self, record), default=str, ensure_ascii=False)


class _LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose own failures (a record whose message does not format) are one line in
    the same format too, not logging's multi-line "--- Logging error ---" dump."""

    def handleError(self, record: logging.LogRecord) -> None:
        try:
            failure = logging.LogRecord(record.name, logging.ERROR, record.pathname, record.lineno,
                                        "Could not format a log record", None, sys.exc_info())
            failure.fields = {"record_msg": str(record.msg), "record_args": repr(record.args)}
            self.stream.write(self.format(failure) + self.terminator)
            self.flush()
        except Exception:  # the stream itself is gone: nothing left to tell
            pass


def setup_logging(level: str = "info", fmt: str = "logfmt") -> None:
    """Every line on stderr in the chosen format: ours, the libraries' (uvicorn's error and access
    loggers, asyncio's "Task exception was never retrieved", warnings) and uncaught exceptions."""
    handler = _LineHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else LogfmtFormatter())
    ours = logging.getLogger("probe_exporter")
    ours.handlers[:] = [handler]
    ours.setLevel(LEVELS[level])
    ours.propagate = False
    # Libraries log through the root logger, at warn and above: their debug and info lines (httpcore's
    # per-request trace, uvicorn's start banner) would drown ours.
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(LEVELS[level], logging.WARNING))
    logging.captureWarnings(True)
    # uvicorn's access log would add a line per scrape (uvicorn is also started with access_log=False).
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        library = logging.getLogger(name)
        library.handlers[:] = []  # uvicorn's default config, where something installed it, writes plain text
        library.propagate = True
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logger.error("Uncaught exception", exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    thread = args.thread.name if args.thread is not None else ""
    logger.error("Uncaught exception in thread", exc_info=args.exc_value, extra={"fields": {"thread": thread}})


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


# The names the rest of the code calls; both are the one masking function (probe_exporter.masking).
scrub = mask
mask_target = mask


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
        if "err" in fields:  # library text: masked now, as it becomes the probe's failure reason
            fields["err"] = mask(str(fields["err"]), self.secrets)
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
            out.append(" ".join(f"{key}={_logfmt_value(_masked(value, self.secrets))}"
                                for key, value in line.items()) + "\n")
        return "".join(out)

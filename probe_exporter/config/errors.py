"""Configuration errors that point at the file, line and key at fault."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import ValidationError


class LineMap(Protocol):
    """Where each key of a YAML file is (probe_exporter.config.yamlfile.LineMap, which imports this
    module: declared here so the two do not import each other)."""

    def line_of(self, path: tuple[str | int, ...]) -> int | None: ...


class ConfigError(Exception):
    """A configuration file could not be loaded; says where and why in one line."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line:
                where += f":{self.line}"
            where += ": "
        key = f"{_one_line(self.key)}: " if self.key else ""
        return f"error parsing config file: {where}{key}{' '.join(self.message.split())}"


def _one_line(text: str) -> str:
    """Keys are user data: escape control characters so the error stays one line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode()


def validate_model(model: Any, body: Any, lines: LineMap, path: str, prefix: tuple[str | int, ...]) -> Any:
    """model.model_validate(body), turning pydantic's error into a ConfigError with file, line and key."""
    try:
        return model.model_validate(body)
    except ValidationError as err:
        raise config_error_from(err, lines, path, prefix) from None


def config_error_from(err: ValidationError, lines: LineMap, path: str,
                      prefix: tuple[str | int, ...]) -> ConfigError:
    first = err.errors(include_url=False)[0]
    loc = (*prefix, *(part for part in first["loc"] if isinstance(part, (str, int))))
    if "within_key" in first.get("ctx", {}):  # a check on a whole block that blames one key of it
        loc = (*loc, first["ctx"]["within_key"])
    key = ".".join(str(part) for part in loc)
    if first["type"] == "extra_forbidden":
        message = f"field {loc[-1]} not found"
    elif first["type"] == "missing":
        message = f"field {loc[-1]} is required"
    else:
        message = first["msg"].removeprefix("Value error, ")
    return ConfigError(message, file=path, line=lines.line_of(loc), key=key)

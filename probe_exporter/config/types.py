"""Value types shared by every config schema: Go durations, base-2 sizes, RE2 regexes, secrets."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Collection
from typing import Annotated, Any

import re2
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    PlainSerializer,
    model_validator,
)
from pydantic_core import core_schema

from probe_exporter.config import goyaml
from probe_exporter.gotext import go_quote
from probe_exporter.masking import SECRET_MARK


class StrictModel(BaseModel):
    """Rejects unknown keys, like the Go exporters' yaml decoders with KnownFields(true), and reads
    YAML values as Go's yaml decodes them into a struct (empty blocks are their defaults, string
    fields get the text as written: see probe_exporter.config.goyaml)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _go_yaml_decoding(cls, data: Any) -> Any:
        return goyaml.decode(cls, data)


# --- Go time.ParseDuration ------------------------------------------------------------------------

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(value: Any) -> float:
    """Seconds from a Go duration string (`1m30s`, `500ms`); bare numbers and `1d` are rejected as in Go."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f'time: invalid duration "{value}"')
    text = value.strip()
    sign = 1.0
    if text and text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            raise ValueError(f'time: invalid duration "{value}"')
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f'time: invalid duration "{value}"')
    return sign * total


def format_go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): `0s`, `500ms`, `1m30s`, `1h0m0s`."""
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return sign + _trim(nanos / size) + unit
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = _trim(rest / 1e9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return sign + secs


def _trim(number: float) -> str:
    text = f"{number:.9f}".rstrip("0").rstrip(".")
    return text or "0"


GoDuration = Annotated[float, BeforeValidator(parse_go_duration), PlainSerializer(format_go_duration)]


# --- prometheus/common model.Duration (sql_exporter's durations) -------------------------------------

_MODEL_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_MODEL_DURATION_UNITS_MS = (("y", 365 * 86_400_000), ("w", 7 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000),
                            ("m", 60_000), ("s", 1000), ("ms", 1))
_MAX_DURATION_NS = (1 << 63) - 1


def parse_model_duration(value: Any) -> float:
    """Seconds from a prometheus/common duration: whole numbers of y, w, d, h, m, s, ms in that order
    (`1d`, `1h30m`, `500ms`); `0` alone needs no unit. Go's time units (`us`, `1.5h`) are refused."""
    if isinstance(value, bool) or not isinstance(value, str):
        value = str(value)  # common reads the scalar's text: `10` is refused, `0` is zero
    if value == "0":
        return 0.0
    if value == "":
        raise ValueError("empty duration string")
    match = _MODEL_DURATION.fullmatch(value)
    if match is None:
        raise ValueError(f"not a valid duration string: {go_quote(value)}")
    millis = 0
    for number, (_, unit_ms) in zip(match.groups(), _MODEL_DURATION_UNITS_MS, strict=True):
        if number:
            millis += int(number) * unit_ms
    if millis * 1_000_000 > _MAX_DURATION_NS:
        raise ValueError("duration out of range")
    return millis / 1000


def format_model_duration(seconds: float) -> str:
    """model.Duration.String(): `0s`, `1d`, `1h30m`, `90d` (years and weeks only when exact)."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    out = ""
    for unit, size in _MODEL_DURATION_UNITS_MS:
        if unit in ("y", "w") and millis % size:
            continue
        if millis >= size:
            out += f"{millis // size}{unit}"
            millis %= size
    return out


ModelDuration = Annotated[float, BeforeValidator(parse_model_duration), PlainSerializer(format_model_duration)]


# --- alecthomas/units Base2Bytes -------------------------------------------------------------------

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1 << 10, "kib": 1 << 10, "mb": 1 << 20, "mib": 1 << 20, "gb": 1 << 30,
               "gib": 1 << 30, "tb": 1 << 40, "tib": 1 << 40, "pb": 1 << 50, "pib": 1 << 50,
               "eb": 1 << 60, "eib": 1 << 60}
_SIZE_PART = re.compile(r"(\d+)([a-zA-Z]*)")
MAX_INT64 = (1 << 63) - 1


def parse_base2_bytes(value: Any) -> int:
    """Bytes from `1MB`, `512KiB`, `1GB512MB` or an integer; KB means KiB. Negative means no limit."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        total = value
    elif isinstance(value, str):
        text = value.strip()
        negative = text.startswith("-")
        text = text.lstrip("+-")
        pos, total = 0, 0
        while pos < len(text):
            match = _SIZE_PART.match(text, pos)
            unit = match.group(2).lower() if match else None
            if not match or unit not in _SIZE_UNITS:
                raise ValueError(f"units: unknown unit in {value!r}")
            total += int(match.group(1)) * _SIZE_UNITS[unit]
            pos = match.end()
        if pos == 0:
            raise ValueError(f"units: invalid size {value!r}")
        total = -total if negative else total
    else:
        raise ValueError(f"invalid size {value!r}")
    if total < 0 or total >= MAX_INT64:
        return MAX_INT64 - 1
    return total


Base2Bytes = Annotated[int, BeforeValidator(parse_base2_bytes)]


# --- Go RE2 regular expressions --------------------------------------------------------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class Regex:
    """A pattern compiled with RE2 (Go semantics), kept with its source for /config."""

    __slots__ = ("compiled", "pattern")
    go_yaml_text = True  # decoded from a YAML scalar's text, as a Go string

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            self.compiled = re2.compile(pattern, options=_RE2_OPTIONS)
        except re2.error as err:
            reason = err.args[0] if err.args else err
            if isinstance(reason, bytes):  # google-re2 gives its reason as bytes
                reason = reason.decode("utf-8", errors="replace")
            raise ValueError(f'"Could not compile regular expression" regexp="{pattern}": {reason}') from None

    def search(self, text: str | bytes) -> bool:
        return self.compiled.search(text) is not None

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate, serialization=core_schema.plain_serializer_function_ser_schema(lambda r: r.pattern))

    @classmethod
    def _validate(cls, value: Any) -> Regex:
        if isinstance(value, Regex):
            return value
        if not isinstance(value, str):
            raise ValueError("regular expression must be a string")
        return cls(value)


# --- Secrets ---------------------------------------------------------------------------------------



class Secret:
    """A credential: never printed. `reveal()` is the one way to read it."""

    __slots__ = ("_value",)
    go_yaml_text = True  # decoded from a YAML scalar's text, as a Go string

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return SECRET_MARK

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate, serialization=core_schema.plain_serializer_function_ser_schema(lambda s: SECRET_MARK))

    @classmethod
    def _validate(cls, value: Any) -> Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            raise ValueError("secret must be a string")
        return cls(str(value))


# --- Raw bytes (`!!binary` or a plain string) ------------------------------------------------------

def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise ValueError("must be a string or !!binary")


def _bytes_out(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return "!!binary " + base64.b64encode(value).decode()


RawBytes = Annotated[bytes, BeforeValidator(_to_bytes), PlainSerializer(_bytes_out)]


def one_of(allowed: Callable[[], Collection[str]] | Collection[str], message: str) -> AfterValidator:
    """A validator refusing a value outside `allowed` (or what `allowed()` returns when it is looked up
    at validation time), with `message` formatted with {value}."""

    def check(value: str) -> str:
        if value not in (allowed() if callable(allowed) else allowed):
            raise ValueError(message.format(value=value))
        return value

    return AfterValidator(check)

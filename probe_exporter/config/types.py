"""Value types shared by every config schema: Go durations, base-2 sizes, RE2 regexes, secrets."""

from __future__ import annotations

import base64
import re
import types
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

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

from probe_exporter.gotext import go_quote


class StrictModel(BaseModel):
    """Rejects unknown keys, like the Go exporters' yaml decoders with KnownFields(true), and reads
    YAML the way Go's yaml decodes it into a struct:

    - a block written with no value (`http:`, `tls_config:`) means its defaults: Go's yaml leaves a
      struct field as it was for a null value and does not call the struct's UnmarshalYAML, so
      neither the block's validation runs nor its defaults change;
    - a string field gets the scalar as written (`X-Flag: on` is "on", `1.10` is "1.10"), where
      YAML 1.1 would resolve it to a bool, number or date (the loader keeps that text; see
      probe_exporter.config.yamlfile).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _go_yaml_decoding(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        texts: dict[Any, str] = getattr(data, "scalar_texts", None) or {}
        plan = _decoding_plan(cls)
        if not texts and not plan.containers.intersection(data) and None not in data.values():
            return data  # the common case: nothing Go would read differently
        decoded: dict[Any, Any] = {}
        for key, value in data.items():
            if value is None and key in plan.blocks:
                continue
            if key in texts and (key in plan.texts or (key in plan.numbers and isinstance(value, bool))):
                decoded[key] = texts[key]  # a number field given `on` is refused, as in Go
            elif key in plan.containers:
                decoded[key] = go_scalar_texts(value, cls.model_fields[key].annotation)
            else:
                decoded[key] = value  # unknown keys are refused by the model
        return decoded


@dataclass(frozen=True)
class _DecodingPlan:
    blocks: frozenset[str]  # fields holding a nested model that does not accept None
    texts: frozenset[str]  # fields of a string type
    numbers: frozenset[str]  # int or float fields
    containers: frozenset[str]  # dict or list fields that hold strings somewhere


_PLANS: dict[type[BaseModel], _DecodingPlan] = {}


def _decoding_plan(model: type[BaseModel]) -> _DecodingPlan:
    plan = _PLANS.get(model)
    if plan is None:
        fields = model.model_fields
        plan = _PLANS[model] = _DecodingPlan(
            blocks=frozenset(name for name, info in fields.items()
                             if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)),
            texts=frozenset(name for name, info in fields.items() if is_text_type(info.annotation)),
            numbers=frozenset(name for name, info in fields.items() if _is_number_type(info.annotation)),
            containers=frozenset(name for name, info in fields.items() if _holds_text(info.annotation)))
    return plan


def _is_number_type(annotation: Any) -> bool:
    if get_origin(annotation) is Union or get_origin(annotation) is types.UnionType:
        return any(_is_number_type(member) for member in get_args(annotation) if member is not type(None))
    return annotation in (int, float)


def _holds_text(annotation: Any) -> bool:
    """A dict or list type with a string type somewhere among its items."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _holds_text(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(_holds_text(member) for member in get_args(annotation))
    if origin in (dict, list):
        return any(is_text_type(item) or _holds_text(item) for item in get_args(annotation)[-1:])
    return False


def is_text_type(annotation: Any) -> bool:
    """Whether Go would decode a YAML scalar into this type as its text (a string type)."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return any(is_text_type(member) for member in get_args(annotation) if member is not type(None))
    if origin is Literal:
        return all(isinstance(choice, str) for choice in get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, (str, bytes, Secret, Regex))


def go_scalar_texts(value: Any, annotation: Any) -> Any:
    """`value` with the items of its containers that go into a string type replaced by their text
    (a `dict[str, str]` of headers, a `list[str]`, ...). Nested models do this themselves."""
    if not isinstance(value, (dict, list)):
        return value
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Union or origin is types.UnionType:
        members = [member for member in args if member is not type(None) and get_origin(member) in (dict, list)]
        if len(members) != 1:
            return value
        annotation = members[0]
        origin, args = get_origin(annotation), get_args(annotation)
    texts: dict[Any, str] = getattr(value, "scalar_texts", None) or {}
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        item_type = args[1]
        return {key: texts[key] if key in texts and is_text_type(item_type) else go_scalar_texts(item, item_type)
                for key, item in value.items()}
    if origin is list and isinstance(value, list) and len(args) == 1:
        item_type = args[0]
        return [texts[index] if index in texts and is_text_type(item_type) else go_scalar_texts(item, item_type)
                for index, item in enumerate(value)]
    return value


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

SECRET_MARK = "<secret>"


class Secret:
    """A credential: never printed. `reveal()` is the one way to read it."""

    __slots__ = ("_value",)

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

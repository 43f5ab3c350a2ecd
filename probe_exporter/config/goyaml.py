"""Go's yaml decoding rules for our pydantic models (applied by StrictModel before validation).

- A block written with no value (`http:`, `tls_config:`) means its defaults: Go's yaml leaves a
  struct field as it was for a null value and does not call the struct's UnmarshalYAML.
- A string field gets the scalar as written (`X-Flag: on` is "on", `1.10` is "1.10") where YAML 1.1
  resolves it to a bool, number or date; the loader (probe_exporter.config.yamlfile) keeps that text
  in `scalar_texts` beside the resolved value. A number field given `on` gets the text too, so it is
  refused as in Go.

A type is a string type when it is str, bytes, a Literal of strings, or a class with
`go_yaml_text = True` (Secret, Regex). This module imports nothing of the package.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel


def decode(model: type[BaseModel], data: Any) -> Any:
    """`data` (a mapping about to be validated as `model`) as Go's yaml would decode it."""
    if not isinstance(data, dict):
        return data
    texts: dict[Any, str] = getattr(data, "scalar_texts", None) or {}
    plan = _decoding_plan(model)
    if not texts and not plan.containers.intersection(data) and None not in data.values():
        return data  # the common case: nothing Go would read differently
    decoded: dict[Any, Any] = {}
    for key, value in data.items():
        if value is None and key in plan.blocks:
            continue
        if key in texts and (key in plan.texts or (key in plan.numbers and isinstance(value, bool))):
            decoded[key] = texts[key]
        elif key in plan.containers:
            decoded[key] = go_scalar_texts(value, model.model_fields[key].annotation)
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
    if not isinstance(annotation, type):
        return False
    return issubclass(annotation, (str, bytes)) or bool(getattr(annotation, "go_yaml_text", False))


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

"""The secret values a module holds, so error text from libraries can be scrubbed of them (logs.scrub).

Secrets are typed (`Secret`) and never printed by our code; this is the safety net for text we do
not control, such as a driver's exception that quotes a header value or a DSN.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from probe_exporter.config.types import Secret

# Shorter values would turn ordinary words into <secret>; they are too weak to matter anyway.
MIN_SCRUBBED_LENGTH = 4


def secret_values(*models: Any) -> frozenset[str]:
    found: set[str] = set()
    _walk(models, found, set())
    for value in list(found):
        found.add(quote(value, safe=""))
    return frozenset(value for value in found if len(value) >= MIN_SCRUBBED_LENGTH)


def _walk(value: Any, found: set[str], seen: set[int]) -> None:
    if isinstance(value, Secret):
        found.add(value.reveal())
    elif isinstance(value, BaseModel):
        if id(value) in seen:
            return
        seen.add(id(value))
        for item in value.__dict__.values():
            _walk(item, found, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, found, seen)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, found, seen)


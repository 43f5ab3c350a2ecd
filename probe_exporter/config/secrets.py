"""The secret values a module holds, so text from libraries can be masked of them (probe_exporter.masking).

Secrets are typed (`Secret`) and never printed by our code; this is the safety net for text we do
not control, such as a driver's exception that quotes a header value or a DSN. Besides the typed
secrets, a module holds credentials by kind: URL passwords (proxy_url, OAuth2 token_url, DSNs) and the
values of secret headers (Authorization, Cookie, ...) in any headers block.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from probe_exporter.config.types import Secret
from probe_exporter.masking import (
    HEADER_BLOCK_KEYS,
    header_value_secrets,
    is_secret_header,
    url_secrets,
    with_encoded_forms,
)


def secret_values(*models: Any) -> frozenset[str]:
    found: list[str] = []
    _walk(models, found, set())
    return with_encoded_forms(found)


def _walk(value: Any, found: list[str], seen: set[int]) -> None:
    if isinstance(value, Secret):
        found.append(value.reveal())
    elif isinstance(value, str):
        found.extend(url_secrets(value))
    elif isinstance(value, BaseModel):
        if id(value) in seen:
            return
        seen.add(id(value))
        for name, item in value.__dict__.items():
            if name in HEADER_BLOCK_KEYS and isinstance(item, dict):
                _walk_headers(item, found, seen)
            else:
                _walk(item, found, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, found, seen)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, found, seen)


def _walk_headers(headers: dict[Any, Any], found: list[str], seen: set[int]) -> None:
    for name, value in headers.items():
        if isinstance(name, str) and is_secret_header(name):
            _header_strings(value, found)
        _walk(value, found, seen)


def _header_strings(value: Any, found: list[str]) -> None:
    """A secret header's plain values: a string, a list of them, or an http_headers entry's `values`."""
    if isinstance(value, str):
        found.extend(header_value_secrets(value))
    elif isinstance(value, (list, tuple)):
        for item in value:
            _header_strings(item, found)
    elif isinstance(value, BaseModel):
        _header_strings(getattr(value, "values", None) or [], found)

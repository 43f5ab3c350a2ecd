"""The one masking function, and the rules of what counts as a secret by kind.

`mask(text, secrets)` serves every place that shows text: log lines, error reasons, targets in the
history and on the landing page, DSNs and URL-valued settings in /config and `debug=true`. By kind:

- the password in a URL's userinfo: `scheme://user:password@host` shows as `scheme://user:<secret>@host`
  (the user name stays, as Go's `url.Redacted` keeps it);
- the value of a password-like parameter (`password=`, `sslpassword=`, `access_token=`, `client_secret=`);
- every known secret value of the module (typed `Secret`s, URL passwords, secret header values), also in
  its URL-encoded forms, since libraries quote secrets as they stood in a URL.

`mask_tree` applies the same to a dumped config, plus the header rule: the value of an `Authorization`,
`Proxy-Authorization`, `Cookie` or `X-Api-Key` header (any case) is a secret in any headers block.

Standard library only: logging uses it before (and without) the config models.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

SECRET_MARK = "<secret>"

# Header names whose value is a credential wherever it is configured.
SECRET_HEADER_NAMES = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
# Config keys holding a map of header (or gRPC metadata) name -> value(s).
HEADER_BLOCK_KEYS = frozenset({"headers", "http_headers", "proxy_connect_header", "metadata"})
# A parameter or option whose name holds one of these words carries a credential.
SECRET_PARAMETER_WORDS = ("password", "passwd", "pwd", "secret", "token")

# Shorter values would turn ordinary words into <secret>; they are too weak to matter anyway.
MIN_MASKED_LENGTH = 4

# `scheme://user:password@`: the password runs to the last `@` before the path, so a password with an
# unencoded `@`, `?` or `#` is masked whole (a URL parser would split it there and show the rest).
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*):([^\s/]*)@")
_SECRET_PARAMETER = re.compile(
    r"((?:^|(?<=[\s?&;,(\"']))[\w.-]*(?:" + "|".join(SECRET_PARAMETER_WORDS) + r")[\w.-]*=)"
    r"(\"[^\"]*\"|'[^']*'|[^\s&#;,)\"']*)", re.IGNORECASE)


def is_secret_header(name: str) -> bool:
    return name.lower() in SECRET_HEADER_NAMES


def is_secret_parameter(name: str) -> bool:
    """A connection option, DSN or URL query parameter that holds a credential (password, sslpassword...)."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_PARAMETER_WORDS)


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every credential in it replaced by <secret> (see the module docstring for the kinds).
    `secrets` are the known values; pass them through `with_encoded_forms` first."""
    found = [value for value in secrets if value in text]
    if found:
        for value in sorted(found, key=len, reverse=True):  # a longer secret may contain a shorter one
            text = text.replace(value, SECRET_MARK)
    if "@" in text:
        text = _URL_PASSWORD.sub(r"\1:" + SECRET_MARK + "@", text)
    if "=" in text:
        text = _SECRET_PARAMETER.sub(r"\1" + SECRET_MARK, text)
    return text


def header_value_secrets(value: str) -> list[str]:
    """A secret header's value and the parts a library may quote alone: the credentials after an
    Authorization scheme (`Bearer xyz`), each value of a cookie list (`a=1; b=2`)."""
    parts = [value, value.rpartition(" ")[2]]
    parts += [item.partition("=")[2].strip() for item in value.split(";") if "=" in item]
    return parts


def with_encoded_forms(values: Iterable[str], min_length: int = MIN_MASKED_LENGTH) -> frozenset[str]:
    """The values as they may be quoted: raw, percent-encoded and form-encoded; too short ones dropped."""
    forms: set[str] = set()
    for value in values:
        forms.update((value, quote(value, safe=""), quote_plus(value)))
    return frozenset(form for form in forms if len(form) >= max(min_length, 1))


def url_secrets(url: str) -> list[str]:
    """The credentials written into a URL or URL-style DSN (a DSN template too): its password, as written
    and decoded, and the values of its password-like query parameters. Read as the masking rules read
    them, so a URL a parser refuses (`[{host}]`) or splits early (an unencoded `#`) still gives them."""
    if "://" not in url:
        return []
    found = [match.group(2) for match in _URL_PASSWORD.finditer(url) if match.group(2)]
    found += [match.group(2).strip("\"'") for match in _SECRET_PARAMETER.finditer(url) if match.group(2)]
    try:
        parts = urlsplit(url)
        found += [value for key, value in parse_qsl(parts.query) if is_secret_parameter(key) and value]
        if parts.password:
            found.append(parts.password)
    except ValueError:
        pass
    return [*found, *(unquote(value) for value in found)]


def mask_tree(data: Any) -> Any:
    """A dumped config (dicts, lists, scalars) with URL credentials masked in every string and secret
    header values masked in every headers block."""
    if isinstance(data, dict):
        return {key: _mask_header_block(value) if key in HEADER_BLOCK_KEYS and isinstance(value, dict)
                else mask_tree(value) for key, value in data.items()}
    if isinstance(data, list):
        return [mask_tree(item) for item in data]
    if isinstance(data, str) and "://" in data:
        return mask(data)
    return data


def _mask_header_block(headers: dict[Any, Any]) -> dict[Any, Any]:
    return {name: _masked_leaves(value) if isinstance(name, str) and is_secret_header(name) else mask_tree(value)
            for name, value in headers.items()}


def _masked_leaves(value: Any) -> Any:
    """Every string in a secret header's value, except file names (`files:` of an http_headers entry)."""
    if isinstance(value, dict):
        return {key: item if key == "files" else _masked_leaves(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked_leaves(item) for item in value]
    if isinstance(value, str) and value not in ("", SECRET_MARK):
        return SECRET_MARK
    return value

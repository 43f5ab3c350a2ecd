"""snmp_exporter's snmp.yml: `auths:` + `modules:` (v0.23+), and the older format with the auth
inside each module (v0.22 and before), validated strictly with upstream's defaults and messages.

The generated snmp.yml is large (2 MB, ~5,000 metrics), so the models are plain pydantic models
without per-field Python validators on the hot path; checks that need Python run once per metric.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from probe_exporter.config.errors import ConfigError, validate_model
from probe_exporter.config.types import GoDuration, Regex, Secret, StrictModel, one_of
from probe_exporter.config.yamlfile import LineMap

DEFAULT_AUTH = "public_v2"
DEFAULT_MODULE = "if_mib"

SECURITY_LEVELS = ("noAuthNoPriv", "authNoPriv", "authPriv")
AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
PRIV_PROTOCOLS = ("DES", "AES", "AES192", "AES192C", "AES256", "AES256C")

# collector.go's RenderableIndexTypes (HEAD): anything else cannot be turned into a label.
INDEX_TYPES = frozenset({
    "Integer32", "Integer", "gauge", "counter", "PhysAddress48", "OctetString", "DisplayString",
    "InetAddressIPv4", "InetAddressIPv6", "InetAddress", "InetAddressMissingSize", "LldpPortId", "EnumAsInfo",
})
# Every metric type the collector renders; an unknown one would panic upstream at scrape time.
METRIC_TYPES = frozenset({
    "gauge", "counter", "Float", "Double", "DateAndTime", "ParseDateAndTime", "NTPTimeStamp", "EnumAsInfo",
    "EnumAsStateSet", "Bits", "OctetString", "DisplayString", "PhysAddress48", "InetAddressIPv4",
    "InetAddressIPv6", "InetAddress", "InetAddressMissingSize", "LldpPortId",
})
# Lookup types are rendered with pduValueAsString, which knows the same string types.
LOOKUP_TYPES = METRIC_TYPES


def _scalar_text(value: Any) -> Any:
    """Go's yaml decodes any scalar into a string field: `walk: [1.3]` is the OID "1.3"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


# A string that also accepts a YAML number, as Go's decoder does.
Text = Annotated[str, BeforeValidator(_scalar_text)]


class SnmpAuth(StrictModel):
    community: Secret = Field(default_factory=lambda: Secret("public"))
    security_level: Text = "noAuthNoPriv"
    username: Text = ""
    password: Secret = Field(default_factory=lambda: Secret(""))
    auth_protocol: Text = "MD5"
    priv_protocol: Text = "DES"
    priv_password: Secret = Field(default_factory=lambda: Secret(""))
    context_name: Text = ""
    version: int = 2

    @model_validator(mode="after")
    def _check(self) -> SnmpAuth:
        # config.Auth.UnmarshalYAML: the v3 fields are only checked for version 3.
        if self.version not in (1, 2, 3):
            raise ValueError(f"SNMP version must be 1, 2 or 3. Got: {self.version}")
        if self.version != 3:
            return self
        level = self.security_level
        if level not in SECURITY_LEVELS:
            raise ValueError("security level must be one of authPriv, authNoPriv or noAuthNoPriv")
        if level == "authPriv":
            if not self.priv_password:
                raise ValueError("priv password is missing, required for SNMPv3 with priv")
            if self.priv_protocol not in PRIV_PROTOCOLS:
                raise ValueError("priv protocol must be DES, AES, AES192, AES192C, AES256 or AES256C")
        if level in ("authPriv", "authNoPriv"):
            if not self.password:
                raise ValueError("auth password is missing, required for SNMPv3 with auth")
            if self.auth_protocol not in AUTH_PROTOCOLS:
                raise ValueError("auth protocol must be SHA, SHA224, SHA256, SHA384, SHA512 or MD5")
        if not self.username:
            raise ValueError("auth username is missing, required for SNMPv3")
        return self


class AnchoredRegex(Regex):
    """config.Regexp: the pattern is matched whole, as `^(?:pattern)$` with RE2 semantics."""

    __slots__ = ()

    def __init__(self, pattern: str) -> None:
        super().__init__(f"^(?:{pattern})$")
        self.pattern = pattern

    @classmethod
    def _validate(cls, value: Any) -> AnchoredRegex:
        if isinstance(value, AnchoredRegex):
            return value
        if not isinstance(value, str):
            raise ValueError("regular expression must be a string")
        return cls(value)


class RegexpExtract(StrictModel):
    regex: AnchoredRegex
    value: Text = "$1"


class Index(StrictModel):
    labelname: Text = ""
    type: Annotated[Text, one_of(INDEX_TYPES, 'invalid index type "{value}"')] = ""
    fixed_size: int = 0
    implied: bool = False
    enum_values: dict[int, Text] = Field(default_factory=dict)


class Lookup(StrictModel):
    labels: list[Text] = Field(default_factory=list)
    labelname: Text = ""
    oid: Text = ""
    type: Text = ""
    display_hint: Text = ""
    enum_values: dict[int, Text] = Field(default_factory=dict)


class Metric(StrictModel):
    name: Text
    oid: Text
    type: Annotated[Text, one_of(METRIC_TYPES, 'unknown metric type "{value}"')]
    help: Text = ""
    indexes: list[Index] = Field(default_factory=list)
    lookups: list[Lookup] = Field(default_factory=list)
    regex_extracts: dict[str, list[RegexpExtract]] = Field(default_factory=dict)
    datetime_pattern: Text = ""
    enum_values: dict[int, Text] = Field(default_factory=dict)
    offset: float = 0.0
    scale: float = 0.0
    display_hint: Text = ""


class DynamicFilter(StrictModel):
    oid: Text
    targets: list[Text] = Field(default_factory=list)
    values: list[Regex] = Field(default_factory=list)


class SnmpModule(StrictModel):
    walk: list[Text] = Field(default_factory=list)
    get: list[Text] = Field(default_factory=list)
    metrics: list[Metric] = Field(default_factory=list)
    max_repetitions: int = Field(default=25, ge=0, le=0xFFFFFFFF)
    retries: int = Field(default=3, ge=0)
    timeout: GoDuration = 5.0
    allow_nonincreasing_oids: bool = False
    use_unconnected_udp_socket: bool = False
    filters: list[DynamicFilter] = Field(default_factory=list)
    # Ours, not snmp_exporter's: maximum age of the cached lookup walks (--snmp.lookup-cache; 0s off).
    lookup_cache: GoDuration | None = None
    # The pre-0.23 format kept the SNMP version and credentials in the module; such a module
    # uses them when the request names no `auth`.
    version: int | None = Field(default=None, exclude=True)
    auth: SnmpAuth | None = None

    @model_validator(mode="after")
    def _legacy_auth(self) -> SnmpModule:
        if self.version is not None or self.auth is not None:
            given = self.auth.model_fields_set if self.auth is not None else set()
            data: dict[str, Any] = {key: getattr(self.auth, key) for key in given}
            # Re-validated with the module's version, so the v3 checks apply.
            data["version"] = self.version if self.version is not None else data.get("version", 2)
            self.auth = SnmpAuth.model_validate(data)
            self.version = None
        return self


_ENV_REFERENCE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def expand_environment(text: str) -> str:
    """os.Expand with os.LookupEnv: a variable that is not set is an error; an empty one is fine."""
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        value = os.environ.get(name)
        if value is None:
            raise ValueError(f"environment variable {name!r} is not set")
        return value

    return _ENV_REFERENCE.sub(replace, text)


def _expand_auth(body: Any, expand: bool) -> Any:
    """--config.expand-environment-variables: `${VAR}`/`$VAR` in username, password and priv_password."""
    if not expand or not isinstance(body, dict):
        return body
    expanded = dict(body)
    for key in ("username", "password", "priv_password"):
        if isinstance(expanded.get(key), str):
            expanded[key] = expand_environment(expanded[key])
    return expanded


def _validate(model: Any, body: Any, lines: LineMap, path: str, prefix: tuple[str | int, ...]) -> Any:

    return validate_model(model, body, lines, path, prefix)


def parse_snmp_file(auths: Any, modules: dict[str, Any], lines: LineMap, path: str,
                    expand_environment_variables: bool = False) -> tuple[dict[str, SnmpAuth], dict[str, SnmpModule]]:
    """The `auths:` and the prober-less `modules:` of one file."""
    if auths is not None and not isinstance(auths, dict):
        raise ConfigError("auths must be a mapping", file=path, line=lines.line_of(("auths",)), key="auths")
    parsed_auths = {}
    for name, body in (auths or {}).items():
        try:
            body = _expand_auth(body, expand_environment_variables)
        except ValueError as err:
            raise ConfigError(str(err), file=path, line=lines.line_of(("auths", name)), key=f"auths.{name}") from None
        parsed_auths[str(name)] = _validate(SnmpAuth, body or {}, lines, path, ("auths", name))
    parsed_modules = {str(name): parse_snmp_module(name, body, lines, path, ("modules", name),
                                                   expand_environment_variables)
                      for name, body in modules.items()}
    return parsed_auths, parsed_modules


def parse_snmp_module(name: str, body: Any, lines: LineMap, path: str,
                      prefix: tuple[str | int, ...] | None = None,
                      expand_environment_variables: bool = False) -> SnmpModule:
    """One module body (snmp.yml's, or the `snmp:` block of a `prober: snmp` module)."""
    if prefix is None:  # the `snmp:` block of a `prober: snmp` module
        prefix = ("modules", name, "snmp")
    if isinstance(body, dict) and isinstance(body.get("auth"), dict):
        try:
            body = {**body, "auth": _expand_auth(body["auth"], expand_environment_variables)}
        except ValueError as err:
            raise ConfigError(str(err), file=path, line=lines.line_of((*prefix, "auth")),
                              key=".".join(map(str, (*prefix, "auth")))) from None
    module: SnmpModule = _validate(SnmpModule, body if body is not None else {}, lines, path, prefix)
    return module


def is_legacy_file(data: dict[Any, Any]) -> bool:
    """A pre-0.23 snmp.yml: the top level maps module names straight to module bodies."""
    if not data or "modules" in data or "auths" in data:
        return False
    return all(isinstance(body, dict) and ("walk" in body or "metrics" in body or "get" in body)
               for body in data.values())


class _RerootedLines(LineMap):
    """The line map of a pre-0.23 file, answering for paths under `modules:`."""

    def __init__(self, original: LineMap) -> None:
        super().__init__()
        self._original = original

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        if path and path[0] == "modules":
            path = path[1:]
        return self._original.line_of(path)


def upgrade_legacy_file(data: dict[Any, Any], lines: LineMap) -> tuple[dict[str, Any], LineMap]:
    """Re-root a pre-0.23 file under `modules:`; each module keeps its own version and auth."""
    return {"modules": data}, _RerootedLines(lines)

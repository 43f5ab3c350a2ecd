"""A module: what a `/probe?module=NAME` request runs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, PrivateAttr, ValidationInfo, create_model, field_validator, model_validator

from probe_exporter import registry
from probe_exporter.config.blackbox import (
    DNSProbe,
    GRPCProbe,
    HTTPProbe,
    ICMPProbe,
    TCPProbe,
    UnixProbe,
    WebsocketProbe,
)
from probe_exporter.config.snmp import SnmpModule
from probe_exporter.config.sql import SQLModule
from probe_exporter.config.types import GoDuration, StrictModel, one_of
from probe_exporter.extras import SQL_DRIVER_EXTRAS, installed
from probe_exporter.modulecache import CacheKey

T = TypeVar("T")


class Module(StrictModel):
    prober: Annotated[str, one_of(registry.names, "prober '{value}' is not valid")]
    timeout: GoDuration = 0.0
    # Probes of this module that may run at once (0: no per-module limit). Waiting for a slot counts
    # against the probe's deadline; see probe_exporter.limits.
    max_concurrency: int = Field(default=0, ge=0)
    # Probes of this module to one target (the `target` parameter as given) at a time (0: no limit).
    # SQL modules take their sql: block's max_concurrency_per_target (default 2) when this is unset.
    max_concurrency_per_target: int = Field(default=0, ge=0)
    # Opt-in guard against use as an open proxy: CIDRs, host globs, URL prefixes or path globs the
    # target must match (empty: any target). See probe_exporter.limits.TargetPolicy.
    allowed_targets: list[str] = Field(default_factory=list)
    http: HTTPProbe = Field(default_factory=HTTPProbe)
    tcp: TCPProbe = Field(default_factory=TCPProbe)
    icmp: ICMPProbe = Field(default_factory=ICMPProbe)
    # Go validates dns: only when the block is written, so the default skips validation.
    dns: DNSProbe = Field(default_factory=lambda: DNSProbe.model_construct())
    # Not in blackbox's DefaultModule: without a grpc: block, ip_protocol_fallback is false.
    grpc: GRPCProbe = Field(default_factory=lambda: GRPCProbe(ip_protocol_fallback=False))
    unix: UnixProbe = Field(default_factory=UnixProbe)
    websocket: WebsocketProbe = Field(default_factory=WebsocketProbe)
    # Our own probers' blocks; their schemas live in their own config modules.
    snmp: SnmpModule | None = Field(default=None, exclude=True)
    sql: SQLModule | None = None

    # Objects a prober builds once per module (clients, SSL contexts) and reuses across probes;
    # they go away with the module on reload.
    _cache: dict[CacheKey[Any], Any] = PrivateAttr(default_factory=dict)

    @field_validator("allowed_targets")
    @classmethod
    def _check_allowed_targets(cls, entries: list[str]) -> list[str]:
        from probe_exporter.limits import TargetPolicy

        TargetPolicy(entries)  # raises ValueError with the bad entry
        return entries

    @model_validator(mode="before")
    @classmethod
    def _allowed_targets_for_sql(cls, data: Any) -> Any:
        """One allowlist for every prober: a SQL module that lists only the module's allowed_targets has
        them as sql_exporter's target_allow too (so it may carry credentials, and names are checked by
        what they resolve to, as target_allow does)."""
        if isinstance(data, dict) and data.get("allowed_targets") and isinstance(data.get("sql"), dict):
            sql = data["sql"]
            if not sql.get("target_allow"):
                sql["target_allow"] = data["allowed_targets"]  # in place: keeps the YAML scalar texts
        return data

    @model_validator(mode="after")
    def _fold_sql_limits(self) -> Module:
        """sql_exporter-style limits in the sql: block are spellings of the module's own: one limiter
        (probe_exporter.limits) applies them."""
        if self.sql is not None:
            self.max_concurrency = self.max_concurrency or self.sql.max_concurrency
            self.max_concurrency_per_target = self.max_concurrency_per_target or self.sql.max_concurrency_per_target
        return self

    @field_validator("icmp")
    @classmethod
    def _check_icmp_burst(cls, icmp: ICMPProbe, info: ValidationInfo) -> ICMPProbe:
        icmp.check_burst_fits(info.data.get("timeout", 0.0))
        return icmp

    def cached(self, key: CacheKey[T], build: Callable[[], T]) -> T:
        """The per-module object under `key`, built by `build()` on first use."""
        try:
            value: T = self._cache[key]
        except KeyError:
            value = self._cache[key] = build()
        return value

    def extras_needed(self) -> list[str]:
        """The pip extras this module needs: its prober's, its SQL driver's, HTTP/3's, CEL's."""
        needed = [registry.entry(self.prober).extra] if registry.entry(self.prober).extra else []
        if self.prober == "sql" and self.sql is not None and self.sql.driver in SQL_DRIVER_EXTRAS:
            needed.append(SQL_DRIVER_EXTRAS[self.sql.driver])
        if self.prober == "http":
            if self.http.enable_http3:
                needed.append("http3")
            if self.http.fail_if_body_json_matches_cel is not None or self.http.fail_if_body_json_not_matches_cel:
                needed.append("cel")
        return needed

    def missing_extras(self) -> list[str]:
        """The extras this module needs that are not installed (its probes fail, saying which)."""
        return [extra for extra in self.extras_needed() if not installed(extra)]

    def prober_config(self) -> BaseModel | None:
        """The block named after the module's prober (`http:`, `snmp:`, a plugin's own)."""
        block = getattr(self, self.prober, None)
        return block if isinstance(block, BaseModel) else None


def model_for(prober: object) -> type[Module]:
    """The model a module body validates against: Module, or for a plugin prober a Module with one more
    block, named after the prober and typed by the plugin's config_model (so errors name its keys)."""
    if isinstance(prober, str) and prober in registry.names() and not registry.entry(prober).builtin:
        return _plugin_module_model(prober)
    return Module


@functools.cache
def _plugin_module_model(prober: str) -> type[Module]:
    block = registry.config_model(prober)
    if block is None:
        return Module
    model: type[Module] = create_model(  # type: ignore[call-overload]
        f"Module_{prober}", __base__=Module, **{prober: (block, Field(default_factory=block))})
    return model

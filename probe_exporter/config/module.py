"""A module: what a `/probe?module=NAME` request runs."""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

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
from probe_exporter.config.sql import SQLModule
from probe_exporter.config.types import GoDuration, StrictModel


class Module(StrictModel):
    prober: str
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
    snmp: Any = Field(default=None, exclude=True)
    sql: SQLModule | None = None

    # Objects a prober builds once per module (clients, SSL contexts) and reuses across probes;
    # they go away with the module on reload.
    _cache: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("allowed_targets")
    @classmethod
    def _check_allowed_targets(cls, entries: list[str]) -> list[str]:
        from probe_exporter.limits import TargetPolicy

        TargetPolicy(entries)  # raises ValueError with the bad entry
        return entries

    @model_validator(mode="after")
    def _fold_sql_limits(self) -> Module:
        """sql_exporter-style limits in the sql: block are spellings of the module's own: one limiter
        (probe_exporter.limits) applies them."""
        if self.sql is not None:
            self.max_concurrency = self.max_concurrency or self.sql.max_concurrency
            self.max_concurrency_per_target = self.max_concurrency_per_target or self.sql.max_concurrency_per_target
        return self

    @field_validator("prober")
    @classmethod
    def _check_prober(cls, value: str) -> str:
        if value not in registry.names():
            raise ValueError(f"prober '{value}' is not valid")
        return value

    def cached(self, key: str, build: Any) -> Any:
        """The per-module object under `key`, built by `build()` on first use."""
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = build()
            return value

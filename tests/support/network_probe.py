"""Helpers for the tcp/dns/icmp/grpc prober tests: run a module, read its metrics and log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from probe_exporter.config import Module
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.pipeline import ProbeOutcome, run_probe

# FNV-1a 32 of 127.0.0.1, as measured against blackbox_exporter.
LOOPBACK_V4_HASH = 3668918509


def module(body: Mapping[str, Any]) -> Module:
    return Module.model_validate(dict(body))


async def probe(body: Mapping[str, Any] | Module, target: str, timeout: float = 3.0,
                params: Mapping[str, str] | None = None) -> ProbeOutcome:
    mod = body if isinstance(body, Module) else module(body)
    return await run_probe("test", mod, target, timeout, params=params)


def samples(outcome: ProbeOutcome) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(name, sorted labels): value} for every series the probe produced."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in collect_sorted([outcome.metrics]):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(outcome: ProbeOutcome, name: str, **labels: str) -> float:
    return samples(outcome)[(name, tuple(sorted(labels.items())))]


def names(outcome: ProbeOutcome) -> set[str]:
    return {name for name, _ in samples(outcome)}


def label_sets(outcome: ProbeOutcome, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in samples(outcome) if n == name]


def text(outcome: ProbeOutcome) -> str:
    return render_text(collect_sorted([outcome.metrics])).decode()


def log_text(outcome: ProbeOutcome) -> str:
    return outcome.log.text()


ADDRESS_METRICS = {"probe_dns_lookup_time_seconds", "probe_ip_protocol", "probe_ip_addr_hash"}
ALWAYS = {"probe_success", "probe_duration_seconds", "probe_timeout_seconds"}

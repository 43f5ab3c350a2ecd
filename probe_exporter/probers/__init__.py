"""Probers by name. Each lives in its own module behind probers.base.Prober."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from probe_exporter.probers.base import BadRequest, Prober, ProbeRequest

if TYPE_CHECKING:
    from probe_exporter.config import Module

# name -> "module:function"; a prober is imported when the config has a module using it (load_probers),
# so one that no module uses costs no memory.
_PROBERS = {
    "http": "probe_exporter.probers.http:probe_http",
    "snmp": "probe_exporter.probers.snmp:probe_snmp",
    "tcp": "probe_exporter.probers.tcp:probe_tcp",
    "dns": "probe_exporter.probers.dns:probe_dns",
    "grpc": "probe_exporter.probers.grpc:probe_grpc",
    "icmp": "probe_exporter.probers.icmp:probe_icmp",
    "unix": "probe_exporter.probers.unix:probe_unix",
    "sql": "probe_exporter.probers.sql:probe_sql",
}

_loaded: dict[str, Prober] = {}


def get_prober(name: str) -> Prober | None:
    prober = _loaded.get(name)
    if prober is None and name in _PROBERS:
        module_name, _, function = _PROBERS[name].partition(":")
        prober = _loaded[name] = getattr(importlib.import_module(module_name), function)
    return prober


def load_probers(modules: Iterable[Module]) -> None:
    """Import the probers these modules use now, at startup or on reload, and let each load what its
    modules need (a prober module's optional `preload(modules)`: the SQL drivers): imported inside a
    first probe, those libraries (httpx, cryptography, pysnmp, grpc, psycopg: up to a second) would
    stall the event loop, and every probe in flight with it, under full load (bench/soak)."""
    by_prober: dict[str, list[Module]] = {}
    for module in modules:
        by_prober.setdefault(module.prober, []).append(module)
    for name, used in by_prober.items():
        if get_prober(name) is None:
            continue
        preload = getattr(sys.modules[_PROBERS[name].partition(":")[0]], "preload", None)
        if preload is not None:
            preload(used)


async def shutdown_probers() -> None:
    """Let loaded probers release process-wide resources (an SNMP engine, driver pools)."""
    for spec in _PROBERS.values():
        module = sys.modules.get(spec.partition(":")[0])
        shutdown = getattr(module, "shutdown", None)
        if shutdown is not None:
            await shutdown()


__all__ = ["BadRequest", "ProbeRequest", "Prober", "get_prober", "load_probers", "shutdown_probers"]

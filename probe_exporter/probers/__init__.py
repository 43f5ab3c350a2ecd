"""Probers by name. Each lives in its own module behind probers.base.Prober."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from probe_exporter import logs
from probe_exporter.extras import MissingExtra, missing_module_extras, unavailable_prober
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
        try:
            prober = _loaded[name] = getattr(importlib.import_module(module_name), function)
        except MissingExtra as err:  # its modules still load; each probe fails with "install ...[extra]"
            prober = _loaded[name] = unavailable_prober(err)
    return prober


def load_probers(modules: Mapping[str, Module]) -> None:
    """Import the probers these modules use now, at startup or on reload, and what each module needs
    (a prober module's optional `preload(module)`: pysnmp, a SQL driver, aioquic): imported
    inside a first probe, those libraries (httpx, cryptography, pysnmp, psycopg: up to a second)
    would stall the event loop, and every probe in flight with it, under full load (bench/soak).
    A library that fails to import is logged and left to fail the probes that need it, as it would
    have without this."""
    for name, module in modules.items():
        missing = missing_module_extras(module)
        if missing:
            logs.log(logging.WARNING, "Module needs an optional extra that is not installed; its probes will fail",
                     module=name, prober=module.prober, install=f"probe-exporter[{','.join(missing)}]")
        try:
            if get_prober(module.prober) is None:
                continue
            # Not in sys.modules when the prober's extra is missing (get_prober gave a stand-in).
            preload = getattr(sys.modules.get(_PROBERS[module.prober].partition(":")[0]), "preload", None)
            if preload is not None:
                preload(module)
        except MissingExtra:
            pass  # warned above
        except Exception as err:
            logs.log(logging.WARNING, "Could not load a module's libraries; its probes will fail",
                     module=name, prober=module.prober, err=f"{type(err).__name__}: {err}")


async def shutdown_probers() -> None:
    """Let loaded probers release process-wide resources (an SNMP engine, driver pools)."""
    for spec in _PROBERS.values():
        module = sys.modules.get(spec.partition(":")[0])
        shutdown = getattr(module, "shutdown", None)
        if shutdown is not None:
            await shutdown()


__all__ = ["BadRequest", "ProbeRequest", "Prober", "get_prober", "load_probers", "shutdown_probers"]

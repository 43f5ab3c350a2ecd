"""Driver adapters behind one small interface (drivers.base.Connection), imported on first use."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from probe_exporter.probers.sql.drivers.base import Connection, QueryResult, QueryTimeout
from probe_exporter.probers.sql.spec import ConnectSpec

_MODULES = {
    "postgresql": "probe_exporter.probers.sql.drivers.postgresql",
    "mysql": "probe_exporter.probers.sql.drivers.mysql",
    "sqlite": "probe_exporter.probers.sql.drivers.sqlite",
    "sqlalchemy": "probe_exporter.probers.sql.drivers.sqlalchemy",
}


def load_driver(name: str) -> ModuleType:
    return importlib.import_module(_MODULES[name])


async def connect(spec: ConnectSpec, timeout: float) -> Connection:
    """A connection within `timeout` seconds, or TimeoutError / the driver's error."""
    conn: Connection = await load_driver(spec.driver).connect(spec, timeout)
    return conn


def shutdown_pools() -> None:
    """Stop the worker threads of the synchronous drivers that were used."""
    for name in ("sqlite", "sqlalchemy"):
        module = sys.modules.get(_MODULES[name])
        if module is not None:
            module.POOL.shutdown()


__all__ = ["Connection", "QueryResult", "QueryTimeout", "connect", "load_driver", "shutdown_pools"]

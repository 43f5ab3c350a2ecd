"""Every prober by name: the built-in ones and those installed as plugins. The only list of names.

Config validation (is `prober: X` known, and what schema has its block) and dispatch (which `Prober`
runs a module) both read this registry, so a name cannot be accepted without an implementation.

A prober's code is imported only when a loaded module uses it (`load`, called at startup and on
reload), so a prober nobody configures costs no memory. Third-party probers register a `Prober` in
the `probe_exporter.probers` entry-point group of their package (see docs/writing-a-prober.md).

This module imports nothing of the package at module level: it sits below config, and the probers,
which import config, are reached by name only.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from probe_exporter.extras import MissingExtra

if TYPE_CHECKING:
    from pydantic import BaseModel

ENTRY_POINT_GROUP = "probe_exporter.probers"


@dataclass(frozen=True)
class ProberEntry:
    name: str
    # "package.module:attribute" of the Prober value.
    location: str
    # The pip extra that brings the libraries it needs ("" when the core install has them).
    extra: str = ""
    # False for plugins, whose config block is validated by their own config_model.
    builtin: bool = True
    # The distribution a plugin comes from, with its version ("" for built-in probers).
    source: str = ""


_BUILTIN = (
    ProberEntry("http", "probe_exporter.probers.http:PROBER"),
    ProberEntry("tcp", "probe_exporter.probers.tcp:PROBER"),
    ProberEntry("icmp", "probe_exporter.probers.icmp:PROBER"),
    ProberEntry("dns", "probe_exporter.probers.dns:PROBER"),
    ProberEntry("grpc", "probe_exporter.probers.grpc:PROBER", extra="grpc"),
    ProberEntry("unix", "probe_exporter.probers.unix:PROBER"),
    ProberEntry("websocket", "probe_exporter.probers.websocket:PROBER"),
    ProberEntry("snmp", "probe_exporter.probers.snmp:PROBER"),
    ProberEntry("sql", "probe_exporter.probers.sql:PROBER"),
)


class Module(Protocol):
    """What the registry reads of a config module (probe_exporter.config.Module): declared here, as
    the registry sits below config."""

    @property
    def prober(self) -> str: ...


class Prober(Protocol):
    """probe_exporter.probers.base.Prober as the registry stores it (the registry sits below the
    probers and reaches them by name only)."""

    @property
    def name(self) -> str: ...
    @property
    def probe(self) -> Callable[[Any], Awaitable[bool]]: ...
    @property
    def config_model(self) -> type[BaseModel] | None: ...
    @property
    def preload(self) -> Callable[[Any], None] | None: ...
    @property
    def shutdown(self) -> Callable[[], Awaitable[None]] | None: ...


@dataclass(frozen=True)
class _Unavailable:
    """Stands in for a prober whose library is not installed: its modules load, and every probe fails
    with the reason ("install probe-exporter[grpc]")."""

    name: str
    reason: str
    config_model: type[BaseModel] | None = None
    preload: Callable[[Any], None] | None = None
    shutdown: Callable[[], Awaitable[None]] | None = None

    async def probe(self, ctx: Any) -> bool:
        ctx.log.error(self.reason)
        return False


class UnknownProber(LookupError):
    """No prober of that name is built in or installed."""


class ProberUnavailable(ImportError):
    """The prober is known but its libraries are not installed (or failed to import)."""


_lock = threading.Lock()
_entries: dict[str, ProberEntry] | None = None
_loaded: dict[str, Prober] = {}


def _discover() -> dict[str, ProberEntry]:
    global _entries
    if _entries is None:
        with _lock:
            if _entries is None:
                entries = {entry.name: entry for entry in _BUILTIN}
                for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                    if point.name in entries:  # a plugin cannot replace a built-in prober
                        logging.getLogger("probe_exporter").warning(
                            "Ignoring plugin prober %r from %s: the name is taken", point.name, point.value)
                        continue
                    source = f"{point.dist.name} {point.dist.version}" if point.dist is not None else point.value
                    entries[point.name] = ProberEntry(point.name, point.value, builtin=False, source=source)
                _entries = entries
    return _entries


def names() -> tuple[str, ...]:
    """Every prober name a config may use, built-in ones first."""
    return tuple(_discover())


def describe() -> str:
    """One line for --help: every prober, plugins with where they come from."""
    entries = _discover().values()
    text = "Probers: " + ", ".join(e.name for e in entries if e.builtin)
    plugins = [f"{e.name} ({e.source})" for e in entries if not e.builtin]
    return text + (f"; plugins: {', '.join(plugins)}" if plugins else "; no plugins installed") + "."


def entry(name: str) -> ProberEntry:
    try:
        return _discover()[name]
    except KeyError:
        raise UnknownProber(name) from None


def get(name: str) -> Prober:
    """The prober called `name`, imported on first use. UnknownProber or ProberUnavailable otherwise."""
    prober = _loaded.get(name)
    if prober is not None:
        return prober
    found = entry(name)
    module_name, _, attribute = found.location.partition(":")
    try:
        value: Any = getattr(importlib.import_module(module_name), attribute or "PROBER")
    except MissingExtra as err:  # its modules still load; each probe fails with "install probe-exporter[extra]"
        value = _Unavailable(name, str(err))
    except ImportError as err:
        hint = f": install probe-exporter[{found.extra}]" if found.extra else ""
        raise ProberUnavailable(f"prober {name!r} cannot be loaded ({err}){hint}") from err
    if getattr(value, "name", None) != name or not callable(getattr(value, "probe", None)):
        raise ProberUnavailable(f"prober {name!r} from {found.location} is not a probe_exporter Prober")
    _loaded[name] = value
    return value  # type: ignore[no-any-return]


def config_model(name: str) -> type[BaseModel] | None:
    """A plugin's block schema (built-in blocks are typed fields of Module)."""
    return get(name).config_model


def load(modules: Mapping[str, Module]) -> None:
    """Import the probers these modules use now, at startup or on reload, and what each module needs
    (a prober's optional `preload(module)`: pysnmp, a SQL driver, aioquic). Imported inside a first
    probe, those libraries (up to a second for some) would stall the event loop, and every probe in
    flight with it, under full load. A library that fails to import is logged and left to fail the
    probes that need it."""
    from probe_exporter import logs

    for module_name, module in modules.items():
        try:
            prober = get(module.prober)
            if prober.preload is not None:
                prober.preload(module)
        except MissingExtra:
            pass  # warned above
        except Exception as err:
            logs.log(logging.WARNING, "Could not load a module's libraries; its probes will fail",
                     module=module_name, prober=module.prober, err=f"{type(err).__name__}: {err}")


async def shutdown() -> None:
    """Let loaded probers release process-wide resources (an SNMP engine, driver pools)."""
    for prober in list(_loaded.values()):
        if prober.shutdown is not None:
            await prober.shutdown()


def loaded_names() -> tuple[str, ...]:
    return tuple(_loaded)

"""What a prober is: the one interface every prober, built-in or plugin, implements.

A prober is a `Prober` value named in probe_exporter.registry. The pipeline builds a `ProbeContext`
for each probe and awaits `prober.probe(ctx)` inside the probe's deadline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from probe_exporter.logs import ProbeLog
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.settings import Settings

if TYPE_CHECKING:
    from pydantic import BaseModel

    from probe_exporter.config import Config, Module


class BadRequest(Exception):
    """The request itself is wrong (HTTP 400 with this one-line reason), not the target."""


@dataclass
class ProbeContext:
    """One probe: what to probe, with what, until when, and where its metrics and log lines go."""

    target: str
    module_name: str
    module: Module
    # Seconds the prober has; it runs inside asyncio.timeout(timeout) and may keep a margin of its own.
    timeout: float
    metrics: ProbeMetrics = field(default_factory=ProbeMetrics)
    log: ProbeLog = field(default_factory=ProbeLog)
    # Every query parameter of the request (first value of each), for prober-specific ones
    # such as `hostname` or SNMP's `auth`.
    params: Mapping[str, str] = field(default_factory=dict)
    config: Config | None = None
    # The exporter's flags, for the few that change how a prober works (--snmp.wrap-large-counters).
    settings: Settings = field(default_factory=Settings)


ProbeFunction = Callable[[ProbeContext], Awaitable[bool]]


@dataclass(frozen=True)
class Prober:
    """A prober registers its metrics on ctx.metrics, logs why it failed on ctx.log and returns success.
    It may raise BadRequest before touching the target (a 400, not a failed probe)."""

    name: str
    probe: ProbeFunction
    # The schema of the module's block named after the prober (`http:`, `snmp:`, a plugin's own).
    config_model: type[BaseModel] | None = None
    # Imports what a module needs (a driver, aioquic) at startup and on reload, off the event loop,
    # so a first probe does not stall every other probe in flight while it imports.
    preload: Callable[[Module], None] | None = None
    # Releases process-wide resources (an SNMP engine, driver pools) when the server stops.
    shutdown: Callable[[], Awaitable[None]] | None = None

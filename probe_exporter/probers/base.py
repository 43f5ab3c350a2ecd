"""The one interface every prober implements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from probe_exporter.config import Config, Module
from probe_exporter.logs import ProbeLog
from probe_exporter.probe_metrics import ProbeMetrics


class BadRequest(Exception):
    """The request itself is wrong (HTTP 400 with this one-line reason), not the target."""


@dataclass
class ProbeRequest:
    target: str
    module_name: str
    module: Module
    timeout: float
    # Every query parameter of the request (first value of each), for prober-specific ones
    # such as `hostname` or SNMP's `auth`.
    params: Mapping[str, str] = field(default_factory=dict)
    config: Config | None = None


# A prober registers its metrics on `metrics`, logs why it failed on `log`, and returns success.
# It runs inside asyncio.timeout(request.timeout); it may raise BadRequest before touching the target.
Prober = Callable[[ProbeRequest, ProbeMetrics, ProbeLog], Awaitable[bool]]

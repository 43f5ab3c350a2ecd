"""The exporter's own metrics, served on /metrics (never mixed into probe output)."""

from __future__ import annotations

import asyncio
import os
import platform
from typing import Any, NamedTuple

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector

from probe_exporter import __version__

disable_created_metrics()  # type: ignore[no-untyped-call]

# One timer every 0.1s costs nothing measurable and still catches a loop stalled for a few ms.
LAG_SAMPLE_INTERVAL = 0.1


class _ProbeChildren(NamedTuple):
    """One module's labelled children, looked up once: `.labels()` validates and locks on every call."""

    succeeded: Any
    failed: Any
    duration: Any


class SelfMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        build = Gauge("probe_exporter_build_info",
                      "A metric with a constant '1' value labeled by version and the Python version it runs on.",
                      ["version", "pythonversion"], registry=self.registry, multiprocess_mode="max")
        build.labels(__version__, platform.python_version()).set(1)
        self.probes = Counter("probe_exporter_probes_total", "Probes run, by module, prober and result.",
                              ["module", "prober", "result"], registry=self.registry)
        self.probe_duration = Histogram(
            "probe_exporter_probe_duration_seconds", "Duration of probes, by module and prober.",
            ["module", "prober"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.in_flight = Gauge("probe_exporter_probes_in_flight", "Probes running now, by module.",
                               ["module"], registry=self.registry, multiprocess_mode="livesum")
        self.unknown_module = Counter("probe_exporter_module_unknown_total",
                                      "Count of unknown modules requested by probes", registry=self.registry)
        self.bad_requests = Counter("probe_exporter_bad_requests_total",
                                    "Probe requests rejected with a 4xx, by endpoint.", ["endpoint"],
                                    registry=self.registry)
        self.reload_success = Gauge("probe_exporter_config_last_reload_successful",
                                    "Probe exporter config loaded successfully.", registry=self.registry,
                                    multiprocess_mode="livemin")
        self.reload_timestamp = Gauge("probe_exporter_config_last_reload_success_timestamp_seconds",
                                      "Timestamp of the last successful configuration reload.",
                                      registry=self.registry, multiprocess_mode="livemin")
        self.max_concurrent = Gauge("probe_exporter_max_concurrent_probes",
                                    "Global limit of probes running at once (0: unlimited).", registry=self.registry,
                                    multiprocess_mode="livemax")
        self.probes_queued = Gauge("probe_exporter_probes_queued",
                                   "Probes waiting for a concurrency slot now, by module.", ["module"],
                                   registry=self.registry, multiprocess_mode="livesum")
        self.queue_wait = Histogram(
            "probe_exporter_probe_queue_wait_seconds", "Time probes waited for a concurrency slot, by module.",
            ["module"], registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.probes_not_started = Counter(
            "probe_exporter_probes_not_started_total",
            "Probes answered with HTTP 503 because no concurrency slot freed up before their deadline, by module "
            "and the limit that was full (module_limit, global_limit).", ["module", "reason"], registry=self.registry)
        self.event_loop_lag = Histogram(
            "probe_exporter_event_loop_lag_seconds",
            "How late the event loop ran a timer, sampled every 0.1s: time a ready probe waits for the loop.",
            registry=self.registry, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.targets_denied = Counter("probe_exporter_targets_denied_total",
                                      "Probe requests refused with 403 by a module's allowed_targets, by module.",
                                      ["module"], registry=self.registry)
        self.modules_loaded = Gauge("probe_exporter_config_modules", "Modules in the loaded config, by prober.",
                                    ["prober"], registry=self.registry, multiprocess_mode="livemax")

        self.worker = Gauge("probe_exporter_worker_info", "The worker processes running now (--web.workers).",
                            ["worker", "pid"], registry=self.registry, multiprocess_mode="liveall")
        # Keyed by module names from the config (or SNMP's joined ones), so bounded like the label sets.
        self._probe_children: dict[tuple[str, str], _ProbeChildren] = {}
        self._in_flight_children: dict[str, Any] = {}

    async def sample_event_loop_lag(self, interval: float = LAG_SAMPLE_INTERVAL) -> None:
        """Run until cancelled: how much later than asked each sleep wakes up is the loop's lag."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + interval
            await asyncio.sleep(interval)
            self.event_loop_lag.observe(max(loop.time() - asked, 0.0))

    def set_worker(self, index: int) -> None:
        self.worker.clear()
        self.worker.labels(str(index), str(os.getpid())).set(1)

    def in_flight_for(self, module: str) -> Any:
        child = self._in_flight_children.get(module)
        if child is None:
            child = self._in_flight_children[module] = self.in_flight.labels(module)
        return child

    def observe_probe(self, module: str, prober: str, success: bool, duration: float) -> None:
        children = self._probe_children.get((module, prober))
        if children is None:
            children = self._probe_children[(module, prober)] = _ProbeChildren(
                self.probes.labels(module, prober, "success"), self.probes.labels(module, prober, "failure"),
                self.probe_duration.labels(module, prober))
        (children.succeeded if success else children.failed).inc()
        children.duration.observe(duration)

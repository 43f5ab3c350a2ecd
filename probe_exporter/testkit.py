"""A test kit for probers, built-in or plugin: build a module from its YAML body, run one probe, read
the metrics it produced. Probers are run the way the exporter runs them (registry, ProbeContext,
the deadline), without a web server.

    module = testkit.module("redis_info", {"expect_role": "master"})
    result = await testkit.probe(module, "127.0.0.1:6379")
    assert result.success and result.value("probe_redis_connected_clients") >= 1
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probe_exporter import registry
from probe_exporter.config.errors import validate_model
from probe_exporter.config.module import Module, model_for
from probe_exporter.config.yamlfile import LineMap
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.logs import ProbeLog
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.probers.base import ProbeContext


@dataclass
class ProbeResult:
    success: bool
    metrics: ProbeMetrics
    log: ProbeLog

    def text(self) -> str:
        """The metrics as the exporter would expose them."""
        return render_text(collect_sorted([self.metrics])).decode()

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the sample `name` with exactly these labels, or None."""
        for family in self.metrics.collect():
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None


def module(prober: str, block: Mapping[str, Any] | None = None, **fields: Any) -> Module:
    """A module as a config file would give it: `{prober: NAME, NAME: block, **fields}`, validated by
    the same models (a ConfigError for what a config file would be refused for)."""
    body: dict[str, Any] = {"prober": prober, **fields}
    if block is not None:
        body[prober] = dict(block)
    model: Module = validate_model(model_for(prober), body, LineMap(), "<testkit>", ("modules", "test"))
    return model


async def probe(module: Module, target: str, *, timeout: float = 5.0,
                params: Mapping[str, str] | None = None, module_name: str = "test") -> ProbeResult:
    """Run one probe of `module` against `target` within `timeout` seconds (a timeout is a failure)."""
    ctx = ProbeContext(target=target, module_name=module_name, module=module, timeout=timeout,
                       params=dict(params or {}, module=module_name, target=target))
    prober = registry.get(module.prober)
    try:
        async with asyncio.timeout(timeout):
            success = await prober.probe(ctx)
    except TimeoutError:
        ctx.log.error("Timeout reached", timeout_seconds=timeout)
        success = False
    return ProbeResult(success, ctx.metrics, ctx.log)

"""Running one HTTP probe in a test and reading its metrics back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probe_exporter.config.module import Module
from probe_exporter.pipeline import run_probe


@dataclass
class ProbeResult:
    success: bool
    duration: float
    families: dict[str, dict[tuple[tuple[str, str], ...], float]]
    log: str

    def value(self, name: str, **labels: str) -> float:
        """The value of one series; KeyError when it is absent."""
        return self.families[name][tuple(sorted(labels.items()))]

    def labels(self, name: str, label: str) -> set[str]:
        return {dict(key)[label] for key in self.families.get(name, {})}

    def only_labels(self, name: str) -> dict[str, str]:
        """The label set of a family's single series."""
        (key,) = self.families[name]
        return dict(key)


def http_module(http: dict[str, Any] | None = None, timeout: str = "5s") -> Module:
    return Module.model_validate({"prober": "http", "timeout": timeout, "http": http or {}})


async def probe(target: str, http: dict[str, Any] | None = None, *, params: dict[str, str] | None = None,
                timeout: float = 5.0, module: Module | None = None) -> ProbeResult:
    module = module or http_module(http)
    outcome = await run_probe("test", module, target, timeout, params=params)
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in outcome.metrics.collect():
        series = families.setdefault(family.name, {})
        for sample in family.samples:
            series[tuple(sorted(sample.labels.items()))] = sample.value
    return ProbeResult(outcome.success, outcome.duration, families, outcome.log.text())

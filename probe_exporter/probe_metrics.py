"""The metrics one probe produces, as a collector for that request's fresh CollectorRegistry.

Probers register gauges up front (so they appear at 0 on a failure path, as in blackbox_exporter)
and set them as the probe advances. This is lighter than prometheus_client's instrumented Gauge:
no locks, no global state, nothing survives the request.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from probe_exporter.exposition import MAX_CACHED_TEXTS, NO_LABELS, LabelSet, TextFamily, series_count


class Gauge:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)

    def add(self, value: float) -> None:
        self.value += value


class GaugeVec:
    __slots__ = ("children", "labelnames")

    def __init__(self, labelnames: Sequence[str]) -> None:
        self.labelnames = tuple(labelnames)
        self.children: dict[tuple[str, ...], Gauge] = {}

    def labels(self, *values: str) -> Gauge:
        if len(values) != len(self.labelnames):
            raise ValueError(f"expected {len(self.labelnames)} label values, got {len(values)}")
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = Gauge()
        return child


# (label names, values) -> their LabelSet: a prober's label values are mostly constants (HTTP's
# phases, TLS versions), so the prepared sets are kept.
_LABEL_SETS: dict[tuple[tuple[str, ...], tuple[str, ...]], LabelSet] = {}


def _label_set(names: tuple[str, ...], values: tuple[str, ...]) -> LabelSet:
    key = (names, values)
    labels = _LABEL_SETS.get(key)
    if labels is None:
        if len(_LABEL_SETS) >= MAX_CACHED_TEXTS:
            _LABEL_SETS.clear()
        labels = _LABEL_SETS[key] = LabelSet(dict(zip(names, map(str, values), strict=True)))
    return labels


class ProbeMetrics:
    """Collector of one probe's metric families, in registration order; the writer sorts them."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, Gauge | GaugeVec]] = {}
        self._extra: list[Metric] = []

    def gauge(self, name: str, documentation: str) -> Gauge:
        existing = self._families.get(name)
        if existing is not None and isinstance(existing[1], Gauge):
            return existing[1]
        gauge = Gauge()
        self._families[name] = (documentation, gauge)
        return gauge

    def gauge_vec(self, name: str, documentation: str, labelnames: Sequence[str]) -> GaugeVec:
        existing = self._families.get(name)
        if existing is not None and isinstance(existing[1], GaugeVec):
            return existing[1]
        vec = GaugeVec(labelnames)
        self._families[name] = (documentation, vec)
        return vec

    def set(self, name: str, documentation: str, value: float) -> None:
        self.gauge(name, documentation).set(value)

    def add_family(self, family: Metric) -> None:
        """A ready-made family (SNMP and SQL results build theirs directly)."""
        self._extra.append(family)

    def has(self, name: str) -> bool:
        return name in self._families or any(f.name == name for f in self._extra)

    def sample_count(self) -> int:
        """How many samples collect() would yield, without building them."""
        gauges = sum(1 if isinstance(metric, Gauge) else len(metric.children) for _, metric in self._families.values())
        return gauges + sum(series_count(family) for family in self._extra)

    def collect(self) -> Iterator[Metric]:
        # TextFamily: each line formatted once here, no Sample objects (a probe response is ~15 families).
        for name, (documentation, metric) in self._families.items():
            family = TextFamily.gauge(name, documentation)
            if isinstance(metric, Gauge):
                family.add(NO_LABELS, metric.value)
            else:
                for values, child in metric.children.items():
                    family.add(_label_set(metric.labelnames, values), child.value)
            yield family
        yield from self._extra

    def registry(self) -> CollectorRegistry:
        """A fresh prometheus_client registry holding just this probe's metrics."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

"""A module's config compiled once for scraping: OIDs as int tuples, metrics findable by prefix."""

from __future__ import annotations

from dataclasses import dataclass, field

from probe_exporter.config.snmp import DynamicFilter, Lookup, Metric, SnmpModule
from probe_exporter.config.types import Regex
from probe_exporter.exposition import LabelSet
from probe_exporter.probers.snmp.values import parse_oid

# Types whose string form depends on the value of the column just before them (last arc - 1).
COMBINED_TYPES: dict[str, dict[int, str]] = {
    "InetAddress": {1: "InetAddressIPv4", 2: "InetAddressIPv6"},
    "InetAddressMissingSize": {1: "InetAddressIPv4", 2: "InetAddressIPv6"},
    "LldpPortId": {1: "DisplayString", 2: "DisplayString", 3: "PhysAddress48", 5: "DisplayString",
                   7: "DisplayString"},
}


def _previous_column(oid: tuple[int, ...]) -> tuple[int, ...]:
    return (*oid[:-1], oid[-1] - 1)


@dataclass
class LookupPlan:
    lookup: Lookup
    oid: tuple[int, ...]
    previous_oid: tuple[int, ...] | None


@dataclass
class MetricPlan:
    metric: Metric
    oid: tuple[int, ...]
    previous_oid: tuple[int, ...] | None
    lookups: list[LookupPlan]
    help_suffixed: dict[str, str] = field(default_factory=dict)
    # Metrics with the same indexes and lookups get the same labels for the same index (a table's
    # columns): the number of that label recipe within the module, so a row's labels are made once.
    label_recipe: int = 0
    scaled: bool = True  # scale or offset set: values need _scaled()
    # How many phases of the module's traffic (the gets, then each walk root in order) must be complete
    # before this metric's samples can be rendered: its lookups and combined-type column come from
    # them. 0: it needs no other PDU (progressive.py renders those as they arrive).
    ready_after: int = 0
    # Without lookups a row's labels come from its index alone, the same in every scrape of every
    # target: index -> the prepared labels, kept across scrapes and shared by the recipe's metrics
    # (render.py bounds it). None when lookups take part.
    index_labels: dict[tuple[int, ...], LabelSet] | None = None
    # (name, help, type, label_recipe, mode) of a metric render_pdu's C path serves (_renderfast.c),
    # see _fast(). None: every sample goes through the Python path.
    fast: tuple[str, str, str, int, int] | None = None


@dataclass
class FilterPlan:
    oid: tuple[int, ...]
    targets: list[str]
    values: list[Regex]


@dataclass
class ModulePlan:
    walk: list[tuple[int, ...]]
    get: list[tuple[int, ...]]
    filters: list[FilterPlan]
    max_repetitions: int
    allow_nonincreasing: bool
    timeout: float
    retries: int
    # metric OID -> metric, and the distinct OID lengths, shortest first: the first length whose
    # prefix is a metric OID claims the PDU, as upstream's trie walk does.
    metrics: dict[tuple[int, ...], MetricPlan]
    lengths: list[int]
    # The metrics no shorter metric OID is a prefix of: for them a PDU one arc longer (a table cell
    # with a one-arc index, or a scalar's .0) is claimed with one lookup.
    unshadowed: dict[tuple[int, ...], MetricPlan] = field(default_factory=dict)
    # Walk roots whose PDUs only feed lookups (no metric OID overlaps them): what --snmp.lookup-cache keeps.
    lookup_only: frozenset[tuple[int, ...]] = frozenset()
    lookup_cache: float | None = None  # the module's `lookup_cache` (None: the flag's)
    # No OID can arrive twice (no filters, roots and gets apart, OIDs must increase), so "a later PDU
    # with the same OID wins" cannot change a sample once rendered: rendering may start mid-walk.
    progressive: bool = False

    def match(self, oid: tuple[int, ...]) -> tuple[MetricPlan, tuple[int, ...]] | None:
        found = self.unshadowed.get(oid[:-1])
        if found is not None:
            return found, oid[-1:]
        return self.match_by_length(oid)

    def match_by_length(self, oid: tuple[int, ...]) -> tuple[MetricPlan, tuple[int, ...]] | None:
        metrics = self.metrics
        for length in self.lengths:
            if length > len(oid):
                return None
            found = metrics.get(oid[:length])
            if found is not None:
                return found, oid[length:]
        return None


def _filter(flt: DynamicFilter) -> FilterPlan:
    return FilterPlan(parse_oid(flt.oid), [t.strip().lstrip(".") for t in flt.targets], list(flt.values))


def _overlaps(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return a[:len(b)] == b or b[:len(a)] == a


def _lookup_only(walks: list[tuple[int, ...]],
                 metrics: dict[tuple[int, ...], MetricPlan]) -> frozenset[tuple[int, ...]]:
    lookup_oids = {oid for plan in metrics.values() for lookup in plan.lookups
                   for oid in (lookup.oid, lookup.previous_oid) if oid}
    return frozenset(root for root in walks
                     if not any(_overlaps(root, oid) for oid in metrics)
                     and any(_overlaps(root, oid) for oid in lookup_oids))


def _phases_of(oid: tuple[int, ...], gets: list[tuple[int, ...]], walks: list[tuple[int, ...]]) -> list[int]:
    """The phases (0: the gets, i + 1: walk root i) that can return PDUs under `oid`."""
    phases = [0] if any(get[:len(oid)] == oid for get in gets) else []
    return phases + [index + 1 for index, root in enumerate(walks) if _overlaps(root, oid)]


def _ready_after(plan: MetricPlan, gets: list[tuple[int, ...]], walks: list[tuple[int, ...]]) -> int:
    needed = [oid for lookup in plan.lookups for oid in (lookup.oid, lookup.previous_oid) if oid]
    if plan.previous_oid:
        needed.append(plan.previous_oid)
    phases = [phase for oid in needed for phase in _phases_of(oid, gets, walks)]
    return max(phases) + 1 if phases else 0


def _progressive(module: SnmpModule, gets: list[tuple[int, ...]], walks: list[tuple[int, ...]]) -> bool:
    if module.filters or module.allow_nonincreasing_oids or len(set(gets)) != len(gets):
        return False
    roots = [*gets, *walks]
    return not any(_overlaps(a, b) for i, a in enumerate(roots) for b in roots[i + 1:])


# _renderfast.c's modes: the PDU as a number (gauges, counters), or as a string label (1 OctetString,
# 2 DisplayString) with the sample 1.
_FAST_MODES = {"gauge": 0, "counter": 0, "OctetString": 1, "DisplayString": 2}


def _fast(metric: Metric, label_recipe: int, scaled: bool) -> tuple[str, str, str, int, int] | None:
    mode = _FAST_MODES.get(metric.type)
    if mode is None or scaled or metric.regex_extracts or (mode == 1 and metric.display_hint):
        return None
    return metric.name, metric.help, metric.type, label_recipe, mode


def compile_module(module: SnmpModule) -> ModulePlan:
    metrics: dict[tuple[int, ...], MetricPlan] = {}
    recipes: dict[str, int] = {}
    index_labels: dict[int, dict[tuple[int, ...], LabelSet]] = {}
    for metric in module.metrics:
        oid = parse_oid(metric.oid)
        lookups = [LookupPlan(lookup, parse_oid(lookup.oid) if lookup.oid else (),
                              _previous_column(parse_oid(lookup.oid)) if lookup.type in COMBINED_TYPES else None)
                   for lookup in metric.lookups]
        previous = _previous_column(oid) if metric.type in COMBINED_TYPES else None
        # Two metrics on one OID: upstream's trie keeps the last one.
        recipe = repr(([i.model_dump() for i in metric.indexes], [lookup.model_dump() for lookup in metric.lookups]))
        label_recipe = recipes.setdefault(recipe, len(recipes))
        scaled = metric.scale != 0.0 or metric.offset != 0.0
        metrics[oid] = MetricPlan(metric, oid, previous, lookups, label_recipe=label_recipe, scaled=scaled,
                                  index_labels=None if lookups else index_labels.setdefault(label_recipe, {}),
                                  fast=_fast(metric, label_recipe, scaled))
    walks = [parse_oid(oid) for oid in module.walk]
    gets = [parse_oid(oid) for oid in module.get]
    for metric_plan in metrics.values():
        metric_plan.ready_after = _ready_after(metric_plan, gets, walks)
    return ModulePlan(
        walk=walks,
        get=gets,
        filters=[_filter(flt) for flt in module.filters],
        max_repetitions=module.max_repetitions,
        allow_nonincreasing=module.allow_nonincreasing_oids,
        timeout=module.timeout,
        retries=module.retries,
        metrics=metrics,
        lengths=sorted({len(oid) for oid in metrics}),
        unshadowed={oid: plan for oid, plan in metrics.items()
                     if not any(oid[:length] in metrics for length in range(1, len(oid)))},
        lookup_only=_lookup_only(walks, metrics),
        lookup_cache=module.lookup_cache,
        progressive=_progressive(module, gets, walks),
    )

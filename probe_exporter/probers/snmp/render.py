"""PDUs to metric families, as snmp_exporter's collect/pduToSamples does.

Works on plain (oid tuple, (kind, value)) pairs, after every await, so a scrape's rendering is one
synchronous pass. Problems that make upstream's whole response a 500 (a duplicate series, one name
with two HELP texts or types) are collected in `Rendered.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from probe_exporter.config.snmp import Metric as MetricConfig
from probe_exporter.exposition import LabelSet, TextFamily, go_float
from probe_exporter.probers.snmp import datetimes
from probe_exporter.probers.snmp.plan import COMBINED_TYPES, MetricPlan, ModulePlan
from probe_exporter.probers.snmp.strings import as_int, display_string, index_as_string, value_as_string
from probe_exporter.probers.snmp.values import (
    COUNTER64,
    DOUBLE,
    FLOAT,
    INTEGER,
    IPADDRESS,
    NULL,
    OCTETS,
    OID,
    UNSIGNED,
    Value,
)

try:
    from probe_exporter.probers.snmp import _renderfast
except ImportError:  # built without a C compiler
    _renderfast = None  # type: ignore[assignment]

__all__ = ["Families", "Rendered", "display_string", "render_module"]

_WRAP = 1 << 53  # float64's mantissa: Counter64 values wrap here so rate() survives the wrap


@dataclass
class Rendered:
    families: dict[str, TextFamily] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    debug: list[str] = field(default_factory=list)


class Families:
    """Families of one response, checked as client_golang's Gather checks them."""

    def __init__(self) -> None:
        self.rendered = Rendered()
        # name -> label sets seen, by their text: sorted and escaped, it is one string per label set,
        # made once per table row (a row's columns share it) and hashed once.
        self._seen: dict[str, dict[str, Mapping[str, str]]] = {}

    def _conflict(self, name: str, help_text: str, kind: str) -> str | None:
        family = self.rendered.families.get(name)
        if family is None:
            return None
        if family.documentation != help_text:
            return f'collected metric {name} has help "{help_text}" but should have "{family.documentation}"'
        if family.type != kind:
            return f"collected metric {name} has type {kind} but should have {family.type}"
        return None

    def add(self, name: str, help_text: str, kind: str, labels: Mapping[str, str], value: float,
            row: LabelSet | None = None) -> None:
        """One sample; `labels` may be shared with other samples and is not changed afterwards.
        `row` is the labels prepared, when the caller has them: a table row's columns share one."""
        families = self.rendered.families
        family = families.get(name)
        if family is None:
            family = families[name] = TextFamily(name, help_text, kind)
        elif family.documentation != help_text or family.type != kind:
            conflict = self._conflict(name, help_text, kind)
            assert conflict is not None
            self.rendered.errors.append(conflict)
            return
        if row is None:
            row = LabelSet(labels)
        key = row.text
        seen = self._seen.get(name)
        if seen is None:
            seen = self._seen[name] = {}
        elif key in seen:
            label_text = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            self.rendered.errors.append(
                f"collected metric {name} {{{label_text}}} was collected before with the same name and label values")
            return
        seen[key] = labels
        family.add(row, value)

    def merge(self, other: Families) -> list[str]:
        """Add another module's families unless they clash with these; returns the clashes."""
        problems = [p for p in (self._conflict(f.name, f.documentation, f.type)
                                for f in other.rendered.families.values()) if p]
        problems += [f"collected metric {name} {dict(sorted(theirs[text].items()))} was collected before with the "
                     "same name and label values" for name, theirs in other._seen.items()
                     for text in theirs.keys() & self._seen.get(name, {}).keys()]
        if problems:
            return problems
        for family in other.rendered.families.values():
            mine = self.rendered.families.get(family.name)
            if mine is None:
                self.rendered.families[family.name] = family
            else:
                mine.series.extend(family.series)
        for name, theirs in other._seen.items():
            mine_seen = self._seen.get(name)
            if mine_seen is None:
                self._seen[name] = theirs  # taken, not copied (200k entries for a huge walk)
            else:
                mine_seen.update(theirs)
        return []


def pdu_value(value: Value, wrap_counters: bool) -> float:
    """getPduValue: the number a PDU stands for (strings and bytes are 0)."""
    kind, data = value
    if kind == UNSIGNED or kind == INTEGER:
        return float(data)
    if kind == COUNTER64:
        return float(data % _WRAP) if wrap_counters else float(data)
    if kind == FLOAT or kind == DOUBLE:
        return float(data)
    return float(as_int(value))


def _labels(plan: MetricPlan, index: tuple[int, ...], pdus: dict[tuple[int, ...], Value],
            wrap_counters: bool) -> dict[str, str]:
    """indexesToLabels: index labels, then lookups (chained, deleting, missing ones as "")."""
    metric = plan.metric
    labels: dict[str, str] = {}
    label_oids: dict[str, tuple[int, ...]] = {}
    for idx in metric.indexes:
        text, used, index = index_as_string(index, idx.type, idx.fixed_size, idx.implied, idx.enum_values)
        labels[idx.labelname] = text
        label_oids[idx.labelname] = used
    for lookup_plan in plan.lookups:
        lookup = lookup_plan.lookup
        if not lookup.labels:
            labels.pop(lookup.labelname, None)
            continue
        suffix: tuple[int, ...] = ()
        missing = False
        for name in lookup.labels:
            arcs = label_oids.get(name)
            if not arcs:  # upstream builds "oid." then, which never matches
                missing = True
                break
            suffix += arcs
        found = None if missing else pdus.get(lookup_plan.oid + suffix)
        if found is None:
            labels[lookup.labelname] = ""
            continue
        kind: str = lookup.type
        mapping = COMBINED_TYPES.get(kind)
        if mapping is not None and lookup_plan.previous_oid is not None:
            previous = pdus.get(lookup_plan.previous_oid + suffix)
            if previous is not None:
                kind = mapping.get(int(pdu_value(previous, wrap_counters))) or "OctetString"
        if lookup.type == "EnumAsInfo" and lookup.enum_values:
            number = int(pdu_value(found, wrap_counters))
            state = lookup.enum_values.get(number)
            labels[lookup.labelname] = state if state is not None else str(number)
        else:
            labels[lookup.labelname] = value_as_string(found, kind, lookup.display_hint)
        label_oids[lookup.labelname] = (as_int(found),)
    return labels


def _scaled(metric: MetricConfig, value: float) -> float:
    if metric.scale != 0.0:
        value *= metric.scale
    return value + metric.offset


# Rows whose index-only labels a label recipe keeps across scrapes (MetricPlan.index_labels): 0.8-1 kB
# each, so at most ~4 MB a recipe; past this many distinct rows (thousands of hosts' hrSWRun) it starts over.
MAX_INDEX_LABELS = 4096

# (label recipe, index) -> the row's labels, prepared.
LabelCache = dict[tuple[int, tuple[int, ...]], LabelSet]


def _row_labels(plan: MetricPlan, index: tuple[int, ...], pdus: dict[tuple[int, ...], Value],
                wrap_counters: bool) -> LabelSet:
    """The labels of the row at `index`, prepared (callers keep them in the scrape's LabelCache)."""
    kept = plan.index_labels
    if kept is None:
        return LabelSet(_labels(plan, index, pdus, wrap_counters))
    cached = kept.get(index)  # labels from the index alone: made once across scrapes
    if cached is None:
        if len(kept) >= MAX_INDEX_LABELS:
            kept.clear()
        cached = kept[index] = LabelSet(_labels(plan, index, pdus, wrap_counters))
    return cached


def _render_pdu_python(out: Families, plan: MetricPlan, index: tuple[int, ...], value: Value,
                       pdus: dict[tuple[int, ...], Value], wrap_counters: bool, rendered: Rendered,
                       label_cache: LabelCache) -> None:
    """pduToSamples for one PDU."""
    metric = plan.metric
    row = (plan.label_recipe, index)
    cached = label_cache.get(row)
    if cached is None:
        cached = label_cache[row] = _row_labels(plan, index, pdus, wrap_counters)
    labels = cached.labels
    kind = metric.type
    if kind == "gauge" or kind == "counter":  # most samples: the row's labels as they are
        value_kind = value[0]
        number = float(value[1]) if value_kind == UNSIGNED or value_kind == INTEGER else pdu_value(value,
                                                                                                   wrap_counters)
        if plan.scaled:
            number = _scaled(metric, number)
        out.add(metric.name, metric.help, kind, labels, number, cached)
        return
    # Strings and Bits never need the PDU as a number.
    if kind in ("Float", "Double"):
        number = pdu_value(value, wrap_counters)
    elif kind in ("DateAndTime", "ParseDateAndTime", "NTPTimeStamp"):
        try:
            if value[0] != OCTETS:
                raise ValueError(f"invalid {kind} type")
            if kind == "DateAndTime":
                number = datetimes.date_and_time(value[1])
            elif kind == "NTPTimeStamp":
                number = datetimes.ntp_timestamp(value[1])
            else:
                number = datetimes.parse_pattern(display_string(value), metric.datetime_pattern)
        except (ValueError, OverflowError) as err:
            rendered.debug.append(f"Error parsing {kind} of {metric.name}: {err}")
            return
    elif kind == "EnumAsInfo":
        if metric.name in labels:
            return
        number = pdu_value(value, wrap_counters)
        state = metric.enum_values.get(int(number))
        out.add(metric.name + "_info", metric.help + " (EnumAsInfo)", "gauge",
                {**labels, metric.name: state if state is not None else str(int(number))}, 1.0)
        return
    elif kind == "EnumAsStateSet":
        current = int(pdu_value(value, wrap_counters))
        help_text = metric.help + " (EnumAsStateSet)"
        state = metric.enum_values.get(current)
        out.add(metric.name, help_text, "gauge", {**labels, metric.name: state if state is not None else str(current)},
                1.0)
        for key, state_name in metric.enum_values.items():
            if key != current:
                out.add(metric.name, help_text, "gauge", {**labels, metric.name: state_name}, 0.0)
        return
    elif kind == "Bits":
        if value[0] != OCTETS:
            rendered.errors.append(f"BITS type was not a BISTRING on the wire for metric {metric.name}")
            return
        raw: bytes = value[1]
        help_text = metric.help + " (Bits)"
        for bit, bit_name in metric.enum_values.items():
            byte = bit // 8
            is_set = byte < len(raw) and raw[byte] & (0x80 >> (bit % 8))
            out.add(metric.name, help_text, "gauge", {**labels, metric.name: bit_name}, 1.0 if is_set else 0.0)
        return
    else:  # some form of string
        string_kind = kind
        mapping = COMBINED_TYPES.get(kind)
        if mapping is not None and plan.previous_oid is not None:
            previous = pdus.get(plan.previous_oid + index)
            if previous is not None:
                string_kind = mapping.get(int(pdu_value(previous, wrap_counters))) or "OctetString"
        text = value_as_string(value, string_kind, metric.display_hint)
        if metric.regex_extracts:
            _regex_extracts(out, metric, text, labels, rendered)
            return
        if metric.name not in labels:
            cached = cached.with_label(metric.name, text)
        out.add(metric.name, metric.help, "gauge", cached.labels, _scaled(metric, 1.0) if plan.scaled else 1.0, cached)
        return
    out.add(metric.name, metric.help, "gauge", labels, _scaled(metric, number), cached)


def _regex_extracts(out: Families, metric: MetricConfig, text: str, labels: Mapping[str, str],
                    rendered: Rendered) -> None:
    for suffix, rules in metric.regex_extracts.items():
        for rule in rules:
            match = rule.regex.compiled.search(text)
            if match is None:
                continue
            expanded = expand_template(rule.value, match)
            try:
                number = parse_go_float(expanded)
            except ValueError:
                rendered.debug.append(f"Error parsing float64 from value {expanded!r} for metric {metric.name}")
                continue
            out.add(metric.name + suffix, metric.help + " (regex extracted)", "gauge", dict(labels),
                    _scaled(metric, number))
            break


def expand_template(template: str, match: object) -> str:
    """Go's Regexp.ExpandString: $1, ${1}, $name, ${name}, $$; unknown groups expand to ""."""
    out: list[str] = []
    position = 0
    length = len(template)
    while position < length:
        dollar = template.find("$", position)
        if dollar < 0:
            out.append(template[position:])
            break
        out.append(template[position:dollar])
        position = dollar + 1
        if position < length and template[position] == "$":
            out.append("$")
            position += 1
            continue
        name, position, ok = _template_name(template, position)
        if not ok:
            out.append("$")
            continue
        out.append(_group(match, name))
    return "".join(out)


def _template_name(template: str, position: int) -> tuple[str, int, bool]:
    braced = position < len(template) and template[position] == "{"
    start = position + 1 if braced else position
    end = start
    while end < len(template) and (template[end].isalnum() or template[end] == "_") and template[end].isascii():
        end += 1
    if end == start:
        return "", position, False
    if braced:
        if end >= len(template) or template[end] != "}":
            return "", position, False
        return template[start:end], end + 1, True
    return template[start:end], end, True


def _group(match: object, name: str) -> str:
    try:
        if name.isdigit():
            group = match.group(int(name))  # type: ignore[attr-defined]
        else:
            group = match.group(name)  # type: ignore[attr-defined]
    except (IndexError, KeyError, ValueError, TypeError):
        return ""
    return group or ""


_GO_FLOAT_SPECIAL = {"inf": float("inf"), "+inf": float("inf"), "-inf": float("-inf"), "infinity": float("inf"),
                     "+infinity": float("inf"), "-infinity": float("-inf"), "nan": float("nan")}


def parse_go_float(text: str) -> float:
    """strconv.ParseFloat(s, 64): no surrounding space, no underscores without a base prefix."""
    special = _GO_FLOAT_SPECIAL.get(text.lower())
    if special is not None:
        return special
    if not text or text != text.strip() or "_" in text:
        raise ValueError(f"invalid float {text!r}")
    body = text.lstrip("+-")
    if body[:2].lower() == "0x":
        value = float.fromhex(body)
        return -value if text.startswith("-") else value
    if body.lower().startswith(("inf", "nan")):
        raise ValueError(f"invalid float {text!r}")
    value = float(text)
    if value in (float("inf"), float("-inf")):  # Go reports ErrRange for overflow
        raise ValueError(f"value out of range {text!r}")
    return value


# The common case (MetricPlan.fast) in C when the optional extension was built (_renderfast.c: the
# same families and errors, checked by tests/probers/snmp/test_render_fast.py), else in Python.
render_pdu: Callable[[Families, MetricPlan, tuple[int, ...], Value, dict[tuple[int, ...], Value], bool, Rendered,
                      LabelCache], None] = _render_pdu_python
if _renderfast is not None:
    _renderfast.configure(_render_pdu_python, _row_labels, go_float, INTEGER, UNSIGNED, COUNTER64, OCTETS, OID,
                          IPADDRESS, NULL)
    render_pdu = _renderfast.render_pdu


def pdu_renderer() -> str:
    """Which render_pdu serves: "c" (the extension) or "python"."""
    return "python" if render_pdu is _render_pdu_python else "c"


# Varbinds rendered between two yields to the event loop (~5 ms of CPU at ~5 µs a varbind).
RENDER_SLICE = 1000


def _render_slices(plan: ModulePlan, pdus: list[tuple[tuple[int, ...], Value]], out: Families,
                   wrap_counters: bool) -> Iterator[None]:
    """Render, pausing (a yield) after every RENDER_SLICE varbinds."""
    # The OID map first, itself in slices: hashing 200k OID tuples is ~50 ms on its own.
    by_oid: dict[tuple[int, ...], Value] = {}
    step = RENDER_SLICE * 10
    for start in range(0, len(pdus), step):
        by_oid.update(pdus[start:start + step])
        if len(pdus) > step:
            yield
    rendered = out.rendered
    match = plan.match
    render_one = render_pdu
    label_cache: LabelCache = {}
    countdown = RENDER_SLICE
    for oid, value in by_oid.items():
        countdown -= 1
        if not countdown:
            countdown = RENDER_SLICE
            yield
        found = match(oid)
        if found is None:
            continue
        metric_plan, index = found
        render_one(out, metric_plan, index, value, by_oid, wrap_counters, rendered, label_cache)


def render_module(plan: ModulePlan, pdus: list[tuple[tuple[int, ...], Value]], out: Families,
                  wrap_counters: bool = True) -> None:
    """Every sample of one module's PDUs into `out` (a later PDU with the same OID wins)."""
    for _ in _render_slices(plan, pdus, out, wrap_counters):
        pass


async def render_module_sliced(plan: ModulePlan, pdus: list[tuple[tuple[int, ...], Value]], out: Families,
                               wrap_counters: bool = True) -> None:
    """render_module in slices, so a 200k-varbind walk does not hold the event loop for a second:
    other probes' packets and requests are served between the slices."""
    if len(pdus) <= RENDER_SLICE:
        render_module(plan, pdus, out, wrap_counters)
        return
    with full_collections_deferred():
        for _ in _render_slices(plan, pdus, out, wrap_counters):
            await asyncio.sleep(0)


_deferring = 0
_saved_threshold = gc.get_threshold()


@contextlib.contextmanager
def full_collections_deferred() -> Iterator[None]:
    """No full (generation 2) garbage collection while huge renders run. Each Sample is a tracked
    object (a tuple subclass is never untracked), so every full collection walks all samples made
    so far: a 200k-varbind render otherwise pauses the loop for 300-500 ms several times and takes
    three times as long. Young generations are still collected; the full one runs afterwards."""
    global _deferring, _saved_threshold
    if _deferring == 0:
        _saved_threshold = gc.get_threshold()
        if _saved_threshold[0]:  # 0: collection is off already
            gc.set_threshold(_saved_threshold[0], _saved_threshold[1], 1_000_000)
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if _deferring == 0:
            gc.set_threshold(*_saved_threshold)

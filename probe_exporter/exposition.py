"""The one exposition writer: renders metric families the way the Go exporters do.

Differences from prometheus_client's own writer, on purpose: names exactly as given (a counter
called `ifInOctets` stays `ifInOctets`), families sorted by name, series sorted by label values,
labels sorted by name, Go's shortest float formatting (`1`, `1e+06`, `-6.21355968e+10`), and no
`_created` series. OpenMetrics is rendered when the scraper asks for it.
"""

from __future__ import annotations

import bisect
import gzip
import math
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

_SUFFIX_LABEL = {"histogram": "le", "gaugehistogram": "le", "summary": "quantile"}
_PLAIN_TYPES = frozenset(("gauge", "counter", "unknown", "untyped"))
_TEXT_TYPE = {"unknown": "untyped", "info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram"}


def go_float(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 64), with Prometheus' spellings of the infinities."""
    if -1e6 < value < 1e6:  # most values; NaN and the infinities fail the comparison
        whole = int(value)
        # An integer prints as one (also turning -0.0 into "0", as Go's writer does); elsewhere in this
        # range Python's repr is Go's 'g' (see the end).
        return str(whole) if whole == value else repr(float(value))
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    magnitude = abs(value)
    if 1e6 <= magnitude < 1e16:
        # Timestamps, hashes, byte counts: repr is fixed-point here ("3600000000.0") where Go's 'g' has
        # an exponent; the digits and the point's position give it.
        text = repr(float(value))
        prefix = ""
        if text[0] == "-":
            prefix, text = "-", text[1:]
        integer, _, fraction = text.partition(".")
        digits = (integer + fraction).rstrip("0")
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e+{len(integer) - 1:02d}"
    # Elsewhere Python's repr is Go's 'g': the same shortest round-trip digits, fixed-point in
    # [1e-4, 1e6) and exponent form with at least two exponent digits below 1e-4 and from 1e16.
    return repr(float(value))


def _escape_label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _escape_help(text: str) -> str:
    if "\\" in text or "\n" in text:
        return text.replace("\\", "\\\\").replace("\n", "\\n")
    return text


def _labels_text(labels: dict[str, str], suffix_label: str | None = None) -> str:
    if not labels:
        return ""
    if suffix_label is None:
        if len(labels) == 1:
            for name, value in labels.items():
                return f'{{{name}="{_escape_label(str(value))}"}}'
        return "{" + ",".join(f'{name}="{_escape_label(str(labels[name]))}"' for name in sorted(labels)) + "}"
    names = sorted(name for name in labels if name != suffix_label)
    text = ",".join(f'{name}="{_escape_label(str(labels[name]))}"' for name in names)
    if suffix_label in labels:  # le / quantile go last, with Go's number spelling ("1", not "1.0")
        bound = labels[suffix_label]
        try:
            bound = go_float(float(bound))
        except ValueError:
            pass
        text += f'{"," if text else ""}{suffix_label}="{bound}"'
    return "{" + text + "}"


class LabelSet:
    """A plain family's label set prepared for TextFamily.add, once for every series that has it
    (a table row's columns): its text, and its sort key (label count, then the values in label-name
    order, the order _series_key gives). `with_label` adds one label without sorting again."""

    __slots__ = ("key", "labels", "names", "pieces", "text")

    def __init__(self, labels: Mapping[str, str]) -> None:
        names = sorted(labels)
        values = [labels[name] for name in names]
        self.labels = labels
        self.names = names
        self.pieces = [f'{name}="{_escape_label(value)}"' for name, value in zip(names, values, strict=True)]
        self.key: tuple[int | str, ...] = (len(names), *values)
        self.text = "{" + ",".join(self.pieces) + "}" if names else ""

    def with_label(self, name: str, value: str) -> LabelSet:
        """These labels and `name` (not among them), as a new set."""
        names, pieces, key = self.names, self.pieces, self.key
        piece = f'{name}="{_escape_label(value)}"'
        extended = LabelSet.__new__(LabelSet)
        extended.labels = {**self.labels, name: value}
        position = bisect.bisect_left(names, name)
        if position == len(names):  # the usual case: a string metric named after its table sorts last
            extended.names = [*names, name]
            extended.pieces = [*pieces, piece]
            extended.text = self.text[:-1] + "," + piece + "}" if names else "{" + piece + "}"
        else:
            extended.names = [*names[:position], name, *names[position:]]
            extended.pieces = [*pieces[:position], piece, *pieces[position:]]
            extended.text = "{" + ",".join(extended.pieces) + "}"
        extended.key = (len(names) + 1, *key[1:position + 1], value, *key[position + 1:])
        return extended


NO_LABELS = LabelSet({})

# Bound on the caches of prepared text keyed by what probers produce (names and label values are
# mostly constants, but a target's certificate subject is not): past this many entries one starts over.
MAX_CACHED_TEXTS = 4096
_CHECKED_NAMES: set[str] = set()
_TEXT_HEADERS: dict[tuple[str, str, str], str] = {}

# A TextFamily series: (sort key, text line, labels, value).
_Series = tuple[tuple[int | str, ...], str, Mapping[str, str], float]
_KEY_THEN_LINE = itemgetter(0, 1)  # never compares the labels dicts


class TextFamily(Metric):
    """A gauge, counter or untyped family whose series become text lines as they are added. A
    producer of thousands of series per response (an SNMP walk) formats each line once, inside the
    slices it renders in, and builds no Sample objects; a label set's sort key and text are made
    once (LabelSet) and shared by every series that has it, such as the columns of a table row.
    The producer keeps series unique: lines are sorted, never checked for duplicates."""

    def __init__(self, name: str, documentation: str, typ: str) -> None:
        super().__init__(name, documentation, typ)
        self.series: list[_Series] = []

    @classmethod
    def gauge(cls, name: str, documentation: str) -> TextFamily:
        """A gauge family of the exporter's own (a probe's probe_* families): prometheus_client checks
        the name once per distinct name, not on each of the ~15 families of every probe response."""
        if name not in _CHECKED_NAMES:
            cls(name, documentation, "gauge")  # raises on an invalid name
            if len(_CHECKED_NAMES) >= MAX_CACHED_TEXTS:
                _CHECKED_NAMES.clear()
            _CHECKED_NAMES.add(name)
        family = cls.__new__(cls)
        family.name, family.documentation, family.unit, family.type = name, documentation, "", "gauge"
        family.series = []
        return family

    def add(self, labels: LabelSet, value: float) -> None:
        self.series.append((labels.key, f"{self.name}{labels.text} {go_float(value)}\n", labels.labels, value))

    def sorted_lines(self) -> list[str]:
        self.series.sort(key=_KEY_THEN_LINE)
        return [line for _, line, _, _ in self.series]

    @property
    def samples(self) -> list[Sample]:
        """The series as prometheus_client samples, in exposition order, built on each call (for
        tests and tools; the writer uses the lines)."""
        ordered = sorted(self.series, key=_KEY_THEN_LINE)
        return [Sample(self.name, dict(labels), value) for _, _, labels, value in ordered]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        if value:  # Metric.__init__ sets [] ; anything else would be lost
            raise TypeError("a TextFamily's series are added with add()")


def series_count(family: Metric) -> int:
    """How many series a family holds, without building samples."""
    return len(family.series) if isinstance(family, TextFamily) else len(family.samples)


def _series_key(sample: Sample, suffix_label: str | None) -> tuple[int, list[str]]:
    names = sorted(name for name in sample.labels if name != suffix_label)
    return len(names), [sample.labels[name] for name in names]


def _sorted_samples(family: Metric) -> list[Sample]:
    samples = family.samples
    if len(samples) == 1 and family.type in _PLAIN_TYPES:  # most probe families: nothing to sort or drop
        return [] if samples[0].name.endswith("_created") else samples
    samples = [s for s in samples if not s.name.endswith("_created")]
    suffix_label = _SUFFIX_LABEL.get(family.type)
    if suffix_label is None and family.type not in _PLAIN_TYPES:
        return samples
    if suffix_label is None:
        samples.sort(key=lambda s: _series_key(s, suffix_label))
    else:
        # Go's order within a histogram or summary: buckets (quantiles) as given, then _sum, then _count.
        base = family.name
        rank = {base + "_sum": 1, base + "_count": 2}
        samples.sort(key=lambda s: (_series_key(s, suffix_label), rank.get(s.name, 0)))
    if suffix_label is None:
        samples = _drop_duplicate_series(samples)
    return samples


def _drop_duplicate_series(samples: list[Sample]) -> list[Sample]:
    """A series twice in one page corrupts it for Prometheus; keep the first (the list is sorted)."""
    kept: list[Sample] = []
    for sample in samples:
        if kept and kept[-1].name == sample.name and kept[-1].labels == sample.labels:
            continue
        kept.append(sample)
    return kept


def _header_name(family: Metric) -> str:
    if isinstance(family, TextFamily):  # its series are named as the family
        return family.name
    if family.type == "counter" and family.samples and family.samples[0].name == family.name + "_total":
        return family.name + "_total"
    if family.type == "info":
        return family.name + "_info"
    return family.name


def collect_sorted(collectors: Iterable[Collector]) -> list[Metric]:
    families: list[Metric] = []
    for collector in collectors:
        families.extend(collector.collect())
    families.sort(key=_header_name)
    return families


def _sample_lines(family: Metric, stamp: Callable[[float], str]) -> list[str]:
    """The family's series as lines, in order; `stamp` spells a sample's timestamp."""
    if isinstance(family, TextFamily):  # no timestamps: its lines are the same in both formats
        return family.sorted_lines()
    suffix_label = _SUFFIX_LABEL.get(family.type)
    lines = []
    for sample in _sorted_samples(family):
        labels = _labels_text(sample.labels, suffix_label) if sample.labels else ""
        timestamp = "" if sample.timestamp is None else f" {stamp(float(sample.timestamp))}"
        lines.append(f"{sample.name}{labels} {go_float(sample.value)}{timestamp}\n")
    return lines


def _milliseconds(seconds: float) -> str:
    return str(round(seconds * 1000))


def render_text(families: Iterable[Metric]) -> bytes:
    """Prometheus text format 0.0.4."""
    out: list[str] = []
    for family in families:
        lines = _sample_lines(family, _milliseconds)
        if not lines:
            continue
        out.append(_text_header(_header_name(family), family.documentation, family.type))
        out.extend(lines)
    return "".join(out).encode()


def _text_header(name: str, documentation: str, kind: str) -> str:
    """The HELP and TYPE lines, made once for each family a response has in common with earlier ones."""
    key = (name, documentation, kind)
    header = _TEXT_HEADERS.get(key)
    if header is None:
        text_kind = _TEXT_TYPE.get(kind, kind)
        header = f"# HELP {name} {_escape_help(documentation)}\n# TYPE {name} {text_kind}\n"
        if len(_TEXT_HEADERS) >= MAX_CACHED_TEXTS:
            _TEXT_HEADERS.clear()
        _TEXT_HEADERS[key] = header
    return header


def render_openmetrics(families: Iterable[Metric]) -> bytes:
    """OpenMetrics 1.0. A counter whose name lacks `_total` is typed `unknown`, so the series
    Prometheus stores are named exactly as in the text format."""
    out: list[str] = []
    for family in families:
        lines = _sample_lines(family, go_float)  # timestamps in seconds
        if not lines:
            continue
        name, kind = family.name, family.type
        if (kind == "counter" and _header_name(family) != name + "_total") or kind == "untyped":
            kind = "unknown"
        help_text = _escape_help(family.documentation).replace('"', '\\"')
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        out.extend(lines)
    out.append("# EOF\n")
    return "".join(out).encode()


def _accept_quality(accept: str, media_type: str) -> float:
    best = 0.0
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        if kind != media_type:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best = max(best, quality)
    return best


def wants_openmetrics(accept: str | None) -> bool:
    if not accept or "application/openmetrics-text" not in accept:
        return False
    return _accept_quality(accept, "application/openmetrics-text") >= _accept_quality(accept, "text/plain")


def render(collectors: Iterable[Collector], accept: str | None = None,
           accept_encoding: str | None = None) -> tuple[bytes, dict[str, str]]:
    """Body and headers for a metrics response, negotiated from the request's Accept headers."""
    families = collect_sorted(collectors)
    if wants_openmetrics(accept):
        body, content_type = render_openmetrics(families), OPENMETRICS_CONTENT_TYPE
    else:
        body, content_type = render_text(families), TEXT_CONTENT_TYPE
    headers = {"Content-Type": content_type}
    if accept_encoding and "gzip" in accept_encoding and len(body) > 512:
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return body, headers

from __future__ import annotations

import gzip
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from probe_exporter.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    go_float,
    render,
    wants_openmetrics,
)
from probe_exporter.probe_metrics import ProbeMetrics


@pytest.mark.parametrize(("value", "text"), [
    (1, "1"), (0, "0"), (-0.0, "0"), (-1, "-1"), (1.5, "1.5"), (0.1, "0.1"), (100000, "100000"),
    (1e6, "1e+06"), (1234567, "1.234567e+06"), (3.9857997e7, "3.9857997e+07"), (-62135596800, "-6.21355968e+10"),
    (3668918509, "3.668918509e+09"), (1e-5, "1e-05"), (0.0001, "0.0001"), (123456.789, "123456.789"),
    (2.5e-7, "2.5e-07"), (1e21, "1e+21"), (1e15 + 0.3, "1.0000000000000002e+15"), (math.inf, "+Inf"),
    (-math.inf, "-Inf"), (math.nan, "NaN"), (18446744073709551615, "1.8446744073709552e+19"),
])
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def _go_g_format(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 64) for finite non-zero values: Go's layout rule (%e when
    the exponent is below -4 or from 6 on, at least two exponent digits) applied to the shortest
    round-trip digits, taken from repr (Go's shortest digits are the same; the fixed cases above
    are Go's own output). The reference go_float's shortcuts are checked against."""
    sign, digits, exponent = Decimal(repr(float(value))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    decimal_point = len(digits) + int(exponent)  # where the point sits relative to `text`
    exp10 = decimal_point - 1
    prefix = "-" if sign else ""
    # 'g' with shortest precision switches to exponent form outside [1e-4, 1e6), as Go does.
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if decimal_point <= 0:
        return f"{prefix}0.{'0' * -decimal_point}{text}"
    if decimal_point >= len(text):
        return prefix + text + "0" * (decimal_point - len(text))
    return f"{prefix}{text[:decimal_point]}.{text[decimal_point:]}"


@given((st.floats(allow_nan=False, allow_infinity=False) | st.integers(-2**64, 2**64).map(float)).filter(bool))
def test_go_float_agrees_with_gos_algorithm(value: float) -> None:
    assert go_float(value) == _go_g_format(value)


def _family(name: str, kind: str, samples: list[tuple[str, dict[str, str], float]], doc: str = "help") -> Metric:
    family = Metric(name, doc, kind)
    family.samples = [Sample(n, labels, v) for n, labels, v in samples]
    return family


class _Static:
    def __init__(self, *families: Metric) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return list(self.families)


def test_golden_text_page_sorted_exact_names_go_floats() -> None:
    collector = _Static(
        _family("zeta", "gauge", [("zeta", {}, 1.0)]),
        _family("ifInOctets", "counter", [
            ("ifInOctets", {"ifIndex": "2", "ifDescr": "b"}, 3.9857997e7),
            ("ifInOctets", {"ifIndex": "10", "ifDescr": "a"}, 0),
            ("ifInOctets", {"ifIndex": "1", "ifDescr": "a"}, 12),
        ], doc='The total number of octets - 1.3.6.1.2.1.2.2.1.10 "quoted" \\ back\nslash'),
        _family("sysUpTime", "untyped", [("sysUpTime", {}, 123456789)]),
        _family("label_escape", "gauge", [("label_escape", {"v": 'a"b\\c\nd'}, 1)]),
    )
    body, headers = render([collector])
    assert headers["Content-Type"] == TEXT_CONTENT_TYPE
    assert body.decode() == (
        '# HELP ifInOctets The total number of octets - 1.3.6.1.2.1.2.2.1.10 "quoted" \\\\ back\\nslash\n'
        "# TYPE ifInOctets counter\n"
        'ifInOctets{ifDescr="a",ifIndex="1"} 12\n'
        'ifInOctets{ifDescr="a",ifIndex="10"} 0\n'
        'ifInOctets{ifDescr="b",ifIndex="2"} 3.9857997e+07\n'
        "# HELP label_escape help\n# TYPE label_escape gauge\n"
        'label_escape{v="a\\"b\\\\c\\nd"} 1\n'
        "# HELP sysUpTime help\n# TYPE sysUpTime untyped\nsysUpTime 1.23456789e+08\n"
        "# HELP zeta help\n# TYPE zeta gauge\nzeta 1\n")


def test_series_sorted_by_label_count_then_values_and_duplicates_dropped() -> None:
    collector = _Static(_family("m", "gauge", [
        ("m", {"a": "2"}, 1), ("m", {}, 5), ("m", {"a": "1", "b": "x"}, 2), ("m", {"a": "10"}, 3),
        ("m", {"a": "2"}, 9),
    ]))
    lines = render([collector])[0].decode().splitlines()[2:]
    assert lines == ["m 5", 'm{a="10"} 3', 'm{a="2"} 1', 'm{a="1",b="x"} 2']


def test_prometheus_client_metrics_render_without_created_series() -> None:
    registry = CollectorRegistry()
    counter = Counter("requests_total", "Requests.", ["code"], registry=registry)
    counter.labels("200").inc(3)
    histogram = Histogram("latency_seconds", "Latency.", registry=registry, buckets=(0.1, 1))
    histogram.observe(0.5)
    text = render([registry])[0].decode()
    assert "_created" not in text
    assert "# TYPE requests_total counter\nrequests_total{code=\"200\"} 3\n" in text
    assert ('latency_seconds_bucket{le="0.1"} 0\nlatency_seconds_bucket{le="1"} 1\n'
            'latency_seconds_bucket{le="+Inf"} 1\nlatency_seconds_sum 0.5\nlatency_seconds_count 1\n') in text


def test_openmetrics_keeps_series_names_and_ends_with_eof() -> None:
    collector = _Static(_family("ifInOctets", "counter", [("ifInOctets", {}, 1)]),
                        _family("probe_success", "gauge", [("probe_success", {}, 1)]))
    body, headers = render([collector], "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
    assert headers["Content-Type"] == OPENMETRICS_CONTENT_TYPE
    text = body.decode()
    # A counter without _total is typed unknown, so the stored series keeps its exact name.
    assert "# TYPE ifInOctets unknown\nifInOctets 1\n" in text
    assert text.endswith("# EOF\n")


@pytest.mark.parametrize(("accept", "expected"), [
    (None, False), ("text/plain;version=0.0.4", False), ("application/openmetrics-text", True),
    ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", True),
    ("text/plain;version=0.0.4,application/openmetrics-text;q=0.5", False),
])
def test_negotiation(accept: str | None, expected: bool) -> None:
    assert wants_openmetrics(accept) is expected


def test_gzip_when_accepted() -> None:
    metrics = ProbeMetrics()
    vec = metrics.gauge_vec("g", "help", ["i"])
    for i in range(100):
        vec.labels(str(i)).set(i)
    body, headers = render([metrics], None, "gzip, deflate")
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body).startswith(b"# HELP g help\n")


def test_sample_timestamps_are_written() -> None:
    family = Metric("m", "help", "gauge")
    family.samples = [Sample("m", {}, 1.0, 1700000000.123)]
    assert render([_Static(family)])[0].decode().endswith("m 1 1700000000123\n")
    openmetrics = render([_Static(family)], "application/openmetrics-text")[0].decode()
    assert "m 1 1.700000000123e+09\n" in openmetrics


def _as_prometheus_client_families(metrics: ProbeMetrics) -> _Static:
    """The same probe metrics as plain prometheus_client families and samples (what collect() built
    before it made TextFamily lines): the reference the prepared lines are held to."""
    families = []
    for family in metrics.collect():
        plain = Metric(family.name, family.documentation, family.type)
        plain.samples = list(family.samples)
        families.append(plain)
    return _Static(*families)


@pytest.mark.parametrize("accept", [None, "application/openmetrics-text"])
def test_probe_metrics_lines_equal_the_sample_path(accept: str | None) -> None:
    metrics = ProbeMetrics()
    metrics.set("probe_success", "Displays whether or not the probe was a success", 1)
    metrics.set("probe_duration_seconds", "A \\ help\nwith a newline", 0.000123)
    metrics.set("probe_ip_addr_hash", "hash", 3668918509)
    vec = metrics.gauge_vec("probe_http_duration_seconds", "phases", ["phase"])
    for phase, seconds in (("transfer", 0.5), ("connect", 1e-7), ("resolve", 0)):
        vec.labels(phase).set(seconds)
    info = metrics.gauge_vec("probe_tls_version_info", "version", ["version", "n"])
    info.labels('TLS "1.3"', 7).set(1)  # type: ignore[arg-type]  # a plugin's non-string value is shown as text
    ours = render([metrics], accept)[0].decode()
    assert ours == render([_as_prometheus_client_families(metrics)], accept)[0].decode()
    assert 'probe_tls_version_info{n="7",version="TLS \\"1.3\\""} 1\n' in ours
    assert "# HELP probe_duration_seconds A \\\\ help\\nwith a newline\n" in ours
    assert "probe_http_duration_seconds{phase=\"connect\"} 1e-07\n" in ours


def test_probe_metrics_same_name_other_help_and_invalid_names() -> None:
    for help_text in ("first help", "second help"):  # the header cache is keyed by the help text too
        metrics = ProbeMetrics()
        metrics.set("probe_x", help_text, 1)
        assert render([metrics])[0].decode().startswith(f"# HELP probe_x {help_text}\n")
    bad = ProbeMetrics()
    bad.set("", "a name prometheus_client refuses", 1)
    with pytest.raises(ValueError, match="metric name cannot be empty"):
        render([bad])

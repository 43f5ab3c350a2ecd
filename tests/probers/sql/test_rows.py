"""Row -> sample mapping with sql_exporter's semantics."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest

from probe_exporter.config.sql import CollectorMetric
from probe_exporter.probers.sql.rows import RowError, map_rows, to_float, to_label


def metric(**fields: Any) -> CollectorMetric:
    body = {"metric_name": "m", "type": "gauge", "help": "h", "query": "q", **fields}
    return CollectorMetric.model_validate(body)


@pytest.mark.parametrize(("raw", "expected"), [
    (True, 1.0), (False, 0.0), (3, 3.0), (Decimal("12.50"), 12.5), (" 7.25 ", 7.25), (b"42", 42.0),
    (datetime.datetime(1970, 1, 2, tzinfo=datetime.UTC), 86400.0), (datetime.datetime(1970, 1, 1, 0, 1), 60.0),
    (datetime.date(1970, 1, 3), 172800.0), (datetime.timedelta(minutes=2), 120.0),
])
def test_values(raw: Any, expected: float) -> None:
    assert to_float(raw) == expected


@pytest.mark.parametrize("raw", ["12abc", object(), [1]])
def test_non_numeric_values_are_errors(raw: Any) -> None:
    with pytest.raises(RowError):
        to_float(raw)


def test_labels() -> None:
    assert [to_label(v) for v in (None, b"caf\xc3\xa9", b"\xff", True, 3, 2.0, 2.5)] == \
        ["", "café", "\ufffd", "true", "3", "2", "2.5"]
    # A float key column may hold NaN or infinities (PostgreSQL float8): a label, not a crash.
    assert [to_label(v) for v in (float("nan"), float("inf"), float("-inf"))] == ["NaN", "+Inf", "-Inf"]


def test_null_value_gives_no_sample_and_null_key_gives_empty_label() -> None:
    out = map_rows([metric(key_labels=["k"], values=["v"])], ["k", "v"], [("a", 1), (None, 2), ("c", None)])
    assert [(s.labels, s.value) for s in out.samples] == [((("k", "a"),), 1.0), ((("k", ""),), 2.0)]
    assert out.null_values == 1


def test_value_label_static_labels_and_static_value() -> None:
    many = metric(key_labels=["k"], value_label="col", values=["x", "y"], static_labels={"env": "prod"})
    out = map_rows([many], ["k", "x", "y", "ignored"], [("a", 1, 2, "zzz")])
    assert [(dict(s.labels), s.value) for s in out.samples] == [
        ({"col": "x", "env": "prod", "k": "a"}, 1.0), ({"col": "y", "env": "prod", "k": "a"}, 2.0)]
    info = metric(key_labels=["version"], static_value=1)
    assert [(dict(s.labels), s.value) for s in map_rows([info], ["version"], [("1.2",)]).samples] == \
        [({"version": "1.2"}, 1.0)]


def test_missing_column_names_the_returned_ones() -> None:
    with pytest.raises(RowError, match=r"missing column 'v' \(the query returned: k, w\)"):
        map_rows([metric(key_labels=["k"], values=["v"])], ["k", "w"], [("a", 1)])


def test_case_insensitive_fallback_only_when_unambiguous() -> None:
    # PG folds unquoted aliases to lower case: `AS myCount` comes back as `mycount`.
    out = map_rows([metric(values=["myCount"])], ["mycount"], [(5,)])
    assert out.samples[0].value == 5.0
    with pytest.raises(RowError, match="ambiguous"):
        map_rows([metric(values=["n"])], ["N", "n2", "n "[0].upper()], [(1, 2, 3)])


def test_zero_rows_is_success_without_samples() -> None:
    assert map_rows([metric(values=["v"])], [], []).samples == []

"""Rows to samples, with sql_exporter's semantics.

NULL value -> no sample; NULL key label -> ""; a configured column the query did not return fails
that query (the log names the columns it did return); extra columns are ignored. Values may be
numbers, Decimals, booleans, dates (epoch seconds) or numeric strings; anything else is an error.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from probe_exporter.config.sql import CollectorMetric


class RowError(Exception):
    """The query's result does not fit its metrics; the query is reported as failed."""


@dataclass(frozen=True)
class SampleData:
    metric: str
    labels: tuple[tuple[str, str], ...]  # sorted (name, value) pairs
    value: float
    timestamp: float | None = None


@dataclass
class MappedRows:
    samples: list[SampleData] = field(default_factory=list)
    null_values: int = 0  # NULL values skipped (no sample), reported at debug level


def to_float(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return float(value.timestamp())
    if isinstance(value, datetime.date):
        return float(datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.UTC).timestamp())
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise RowError(f"value {value[:40]!r} is not a number") from None
    raise RowError(f"value of type {type(value).__name__} is not a number")


def to_label(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"  # Go's spelling, as the other exporters write it
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if value.is_integer():
            return str(int(value))
    return str(value)


def column_index(columns: Sequence[str], name: str) -> int:
    """Exact match first; else a case-insensitive match if exactly one column fits (PG folds
    unquoted aliases to lower case, Oracle to upper)."""
    try:
        return list(columns).index(name)
    except ValueError:
        pass
    folded = [i for i, column in enumerate(columns) if column.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    if len(folded) > 1:
        raise RowError(f"column {name!r} is ambiguous: {len(folded)} returned columns match it ignoring case")
    raise RowError(f"missing column {name!r} (the query returned: {', '.join(columns) or 'no columns'})")


def map_rows(metrics: Sequence[CollectorMetric], columns: Sequence[str],
             rows: Sequence[Sequence[Any]]) -> MappedRows:
    """Samples for every metric of one query. Raises RowError for a column or value that does not fit."""
    out = MappedRows()
    if not rows:
        return out  # no rows, no samples: a success (some drivers report no columns for an empty result)
    for metric in metrics:
        key_idx = [(name, column_index(columns, name)) for name in metric.key_labels]
        value_idx = [(name, column_index(columns, name)) for name in metric.values]
        ts_idx = column_index(columns, metric.timestamp_value) if metric.timestamp_value else None
        static = tuple(metric.static_labels.items())
        for row in rows:
            base = [(name, to_label(row[i])) for name, i in key_idx]
            base.extend(static)
            timestamp = None
            if ts_idx is not None and row[ts_idx] is not None:
                timestamp = to_float(row[ts_idx])
            if metric.static_value is not None:
                out.samples.append(SampleData(metric.metric_name, tuple(sorted(base)), metric.static_value,
                                              timestamp))
                continue
            for column, i in value_idx:
                raw = row[i]
                if raw is None:
                    out.null_values += 1
                    continue
                labels = list(base)
                if metric.value_label:
                    labels.append((metric.value_label, column))
                out.samples.append(SampleData(metric.metric_name, tuple(sorted(labels)), to_float(raw),
                                              timestamp))
    return out

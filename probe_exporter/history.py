"""Recent probe results for the landing page and /logs, kept like blackbox_exporter's history.

A ring of the last `limit` probes. A failure pushed out of the ring moves to a second list of
preserved failures (also capped at `limit`), so a flood of successes does not hide the failure
someone is looking for. `limit` 0 keeps nothing.

Records keep the probe's log and metrics objects and render the debug text only when asked: building
it (YAML of the module) on every probe would cost more than the probe itself. A probe with a huge
result (an SNMP walk, a big SQL collector) keeps only probe_success and probe_duration_seconds, so
the history stays small whatever the modules return.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from probe_exporter.logs import mask_target
from probe_exporter.probe_metrics import ProbeMetrics


class ProbeOutcome(Protocol):
    """What the history keeps of a probe (probe_exporter.pipeline.ProbeOutcome): declared here so the
    history stays below the pipeline that fills it."""

    probe_id: int
    module_name: str
    target: str
    success: bool
    duration: float
    reason: str
    metrics: ProbeMetrics

    def debug_text(self) -> str: ...

    def with_metrics(self, metrics: ProbeMetrics) -> Self: ...


# Samples a record may keep; beyond this only the probe's own two metrics are kept.
MAX_SAMPLES_KEPT = 5000
_ALWAYS_KEPT = ("probe_success", "probe_duration_seconds")


@dataclass(frozen=True)
class ProbeRecord:
    outcome: ProbeOutcome
    # The module's config as it was when the probe ran (kept for the landing page).
    module: Any
    finished_at: float = field(default_factory=time.time)
    samples_dropped: int = 0

    @property
    def probe_id(self) -> int:
        return self.outcome.probe_id

    @property
    def module_name(self) -> str:
        return self.outcome.module_name

    @property
    def target(self) -> str:
        return self.outcome.target

    @property
    def success(self) -> bool:
        return self.outcome.success

    def debug_text(self) -> str:
        text = self.outcome.debug_text()
        if self.samples_dropped:
            text = text.replace("Metrics that would have been returned:\n",
                                "Metrics that would have been returned:\n"
                                f"# ({self.samples_dropped} samples not kept in the history, "
                                f"only {' and '.join(_ALWAYS_KEPT)})\n", 1)
        return text


def _trimmed(outcome: ProbeOutcome) -> tuple[ProbeOutcome, int]:
    """The outcome as the history keeps it, and how many samples were left out."""
    total = outcome.metrics.sample_count()
    if total <= MAX_SAMPLES_KEPT:  # the common case: keep as is, nothing built
        return outcome, 0
    families = list(outcome.metrics.collect())
    kept = ProbeMetrics()
    for family in families:
        if family.name in _ALWAYS_KEPT:
            kept.add_family(family)
    return outcome.with_metrics(kept), total - sum(
        len(f.samples) for f in families if f.name in _ALWAYS_KEPT)


class ProbeHistory:
    def __init__(self, limit: int = 100) -> None:
        self.limit = max(limit, 0)
        self._recent: deque[ProbeRecord] = deque()
        self._preserved_failures: deque[ProbeRecord] = deque()

    def add(self, outcome: ProbeOutcome, module: Any) -> ProbeRecord | None:
        if self.limit == 0:
            return None
        kept, samples_dropped = _trimmed(outcome)
        record = ProbeRecord(kept, module, samples_dropped=samples_dropped)
        self._recent.append(record)
        while len(self._recent) > self.limit:
            oldest = self._recent.popleft()
            if not oldest.success:
                self._preserved_failures.append(oldest)
                while len(self._preserved_failures) > self.limit:
                    self._preserved_failures.popleft()
        return record

    def records(self) -> list[ProbeRecord]:
        """Every kept record, newest first (preserved failures are always older than the ring)."""
        return [*reversed(self._recent), *reversed(self._preserved_failures)]

    def by_id(self, probe_id: int) -> ProbeRecord | None:
        for record in self._all_oldest_first():
            if record.probe_id == probe_id:
                return record
        return None

    def by_target(self, target: str, module_name: str | None = None) -> ProbeRecord | None:
        """The oldest kept probe of `target` (preserved failures first), as blackbox's /logs?target= does."""
        shown = mask_target(target)  # records keep the target as logs show it
        for record in self._all_oldest_first():
            if record.target == shown and (module_name is None or record.module_name == module_name):
                return record
        return None

    def _all_oldest_first(self) -> list[ProbeRecord]:
        return [*self._preserved_failures, *self._recent]

    def __len__(self) -> int:
        return len(self._recent) + len(self._preserved_failures)

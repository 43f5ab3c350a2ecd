"""`--probes.max-concurrency` and a module's `max_concurrency` limit the whole exporter, not each worker."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.workers.cluster import HeldTarget, get, history_ids, start_exporter

PROBES = 10


def _probe_concurrently(base: str, target: HeldTarget, module: str) -> set[int]:
    """PROBES probes at once on fresh connections; returns the workers that ran them (from the history)."""
    with ThreadPoolExecutor(PROBES) as pool:
        bodies = list(pool.map(lambda _: get(f"{base}/probe?module={module}&target={target.url}", timeout=20),
                               range(PROBES)))
    assert all("\nprobe_success 1\n" in body for body in bodies)
    return {probe_id % 2 for probe_id in history_ids(base)}


@pytest.mark.parametrize(("modules", "flags", "limit"), [
    ("modules:\n  held:\n    prober: http\n    timeout: 10s\n    max_concurrency: 1\n", (), 1),
    ("modules:\n  held:\n    prober: http\n    timeout: 10s\n", ("--probes.max-concurrency", "2"), 2),
], ids=["module max_concurrency", "--probes.max-concurrency"])
def test_limits_count_the_probes_of_every_worker(tmp_path: Path, target: HeldTarget, modules: str,
                                                 flags: tuple[str, ...], limit: int) -> None:
    config = tmp_path / "modules.yml"
    config.write_text(modules)
    with start_exporter(config, extra=flags) as exporter:
        workers = _probe_concurrently(exporter.base, target, "held")
    assert workers == {0, 1}  # both workers ran probes at the same time...
    assert target.peak == limit  # ...yet never more than the limit at once

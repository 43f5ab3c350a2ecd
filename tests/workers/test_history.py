"""The landing page and /logs show every worker's probes, whichever worker answers."""

from __future__ import annotations

import html
from pathlib import Path

from tests.workers.cluster import MODULES, get, history_ids, sample, start_exporter, status

SUCCESSES = 'probe_exporter_probes_total{module="http_2xx",prober="http",result="success"}'


def test_history_and_logs_show_the_probes_of_every_worker(tmp_path: Path) -> None:
    config = tmp_path / "modules.yml"
    config.write_text(MODULES)
    with start_exporter(config) as exporter:
        probes = 30
        for _ in range(probes):
            assert "\nprobe_success 1\n" in get(exporter.probe_url())
        for _ in range(6):  # whichever worker answers the page
            ids = history_ids(exporter.base)
            assert len(ids) == len(set(ids)) == probes
            # Worker i hands out the ids i, i+2, i+4...: both workers ran probes, and they are all listed.
            assert {probe_id % 2 for probe_id in ids} == {0, 1}
        by_worker = {worker: sum(1 for probe_id in ids if probe_id % 2 == worker) for worker in (0, 1)}
        assert sample(get(exporter.base + "/metrics"), SUCCESSES) == sum(by_worker.values()) == probes
        for probe_id in ids:
            text = get(f"{exporter.base}/logs?id={probe_id}")
            assert text.startswith("Logs for the probe:") and "probe_success 1" in text
        target = html.unescape(exporter.base + "/-/healthy")
        for _ in range(4):
            assert "probe_success 1" in get(f"{exporter.base}/logs?target={target}")
        assert status(f"{exporter.base}/logs?id=999999") == 404

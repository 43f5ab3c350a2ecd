from __future__ import annotations

import logging
from pathlib import Path

import pytest

from probe_exporter import pipeline, registry
from probe_exporter.config import Config, Module, load_config
from probe_exporter.config.secrets import secret_values
from probe_exporter.logs import ProbeLog, mask_target
from probe_exporter.pipeline import compute_timeout
from probe_exporter.probers.base import ProbeContext, Prober


# blackbox_exporter's TestTimeoutIsSetCorrectly vectors: (module timeout, header, offset) -> timeout
@pytest.mark.parametrize(("module_timeout", "header", "offset", "expected"), [
    (0, "15", 0.5, 14.5), (0, "15", 0, 15), (20, "15", 0.5, 14.5), (5, "15", 0, 5), (10, "", 0.5, 10),
    (10, "10", 0.5, 9.5), (9.5, "", 1, 9.5), (0, "", 0.5, 119.5), (0, "", 0, 120),
    # quirks kept on purpose: a tiny header gives 0 without a module timeout, and the module timeout with one
    (0, "0.4", 0.5, 0), (5, "0.4", 0.5, 5), (0, "0", 0.5, 119.5),
])
def test_timeout_vectors(module_timeout: float, header: str, offset: float, expected: float) -> None:
    assert compute_timeout(header, offset, module_timeout) == pytest.approx(expected)


def test_bad_header_is_an_error() -> None:
    with pytest.raises(ValueError, match='parsing "abc": invalid syntax'):
        compute_timeout("abc", 0.5, 0)


def _secret_module(tmp_path: Path) -> tuple[Module, Config]:
    path = tmp_path / "m.yml"
    path.write_text("modules:\n  m:\n    prober: http\n    http:\n"
                    "      basic_auth: {username: u, password: hunter2-pass}\n"
                    "      http_headers: {X-Key: {secrets: ['token/with spaces']}}\n")
    config = load_config([str(path)])
    return config.modules["m"], config


def test_secret_values_of_a_module(tmp_path: Path) -> None:
    module, _ = _secret_module(tmp_path)
    values = secret_values(module)
    assert {"hunter2-pass", "token/with spaces", "token%2Fwith%20spaces"} <= values


def test_probe_log_scrubs_library_error_text_and_masks_url_passwords() -> None:
    log = ProbeLog(frozenset({"hunter2-pass"}), module="m", target=mask_target("http://u:hunter2-pass@h/"))
    log.error("Error for HTTP request", err="Illegal header value b'Basic hunter2-pass'")
    text = log.text()
    assert "hunter2" not in text and "hunter2" not in log.first_error
    assert "target=http://u:<secret>@h/" in text and "<secret>'" in text


async def test_an_internal_prober_error_never_logs_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    module, config = _secret_module(tmp_path)

    async def broken_probe(ctx: ProbeContext) -> bool:
        raise RuntimeError("library said: credentials hunter2-pass rejected")

    monkeypatch.setattr(registry, "get", lambda name: Prober(name=name, probe=broken_probe))
    caplog.set_level(logging.DEBUG, logger="probe_exporter")
    monkeypatch.setattr(logging.getLogger("probe_exporter"), "propagate", True)
    outcome = await pipeline.run_probe("m", module, "http://u:hunter2-pass@127.0.0.1:9/", 1.0, config=config)
    assert not outcome.success
    assert "hunter2" not in outcome.reason + outcome.log.text() + outcome.target
    assert "RuntimeError" in outcome.reason
    records = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "prober raised" in records and "hunter2" not in records


async def test_event_loop_lag_is_sampled_and_sees_a_blocked_loop() -> None:
    import asyncio
    import time

    from probe_exporter.selfmetrics import SelfMetrics

    metrics = SelfMetrics()
    sampler = asyncio.create_task(metrics.sample_event_loop_lag(interval=0.01))
    await asyncio.sleep(0.05)
    time.sleep(0.2)  # noqa: ASYNC251 - on purpose: a callback hogging the loop makes the next sample late
    await asyncio.sleep(0.05)
    sampler.cancel()
    count = metrics.registry.get_sample_value("probe_exporter_event_loop_lag_seconds_count")
    total = metrics.registry.get_sample_value("probe_exporter_event_loop_lag_seconds_sum")
    assert count is not None and count >= 3
    assert total is not None and total >= 0.15

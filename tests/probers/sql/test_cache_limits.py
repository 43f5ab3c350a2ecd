"""The bounded structures behind caching and limits, and config reload of collector files."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from probe_exporter.probers.sql.cache import CollectorCache, CollectorResult, QueryStat
from probe_exporter.probers.sql.rows import SampleData
from tests.support.sql_probe import exporter_for, gauge, value, write_config


def result(name: str, ok: bool = True) -> CollectorResult:
    return CollectorResult(name, [SampleData("m", (), 1.0)], [QueryStat(name, "q", ok, 0.1, 1)])


def test_cache_is_bounded_lru_and_never_keeps_errors() -> None:
    cache = CollectorCache()
    for i in range(5):
        cache.put(("mod", f"t{i}", "c"), result(f"c{i}"), max_keys=3)
    assert len(cache) == 3
    assert cache.get(("mod", "t0", "c"), 60) is None and cache.get(("mod", "t4", "c"), 60) is not None
    cache.put(("mod", "bad", "c"), result("bad", ok=False), max_keys=3)
    assert cache.get(("mod", "bad", "c"), 60) is None
    stale = result("old")
    stale.created = time.monotonic() - 61
    cache.put(("mod", "old", "c"), stale, max_keys=3)
    assert cache.get(("mod", "old", "c"), 60) is None


async def test_single_flight_lock_table_does_not_grow() -> None:
    cache = CollectorCache()
    order: list[str] = []

    async def flight(tag: str) -> None:
        async with cache.flight(("m", "t", "c")):
            order.append(f"in {tag}")
            await asyncio.sleep(0.01)
            order.append(f"out {tag}")

    await asyncio.gather(flight("a"), flight("b"))
    assert order in (["in a", "out a", "in b", "out b"], ["in b", "out b", "in a", "out a"])
    assert cache._flights == {}


async def test_per_target_slots_are_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from probe_exporter import limits as shared_limits

    monkeypatch.setattr(shared_limits, "MAX_TARGET_KEYS", 10)
    limiter = shared_limits.ProbeLimiter(0)
    for i in range(50):
        async with limiter.slot("m", target=f"t{i}", target_limit=1):
            pass
    assert limiter.target_keys() == 10


async def test_a_broken_collector_file_fails_the_reload_and_keeps_the_old_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, "      driver: sqlite\n      target_allow_paths: ['*.db']\n",
                          gauge("one", "SELECT 1 AS n"))
    (tmp_path / "a.db").write_bytes(b"")
    async with exporter_for(config) as exporter:
        (tmp_path / "app.collector.yml").write_text("collector_name: app\nmetrics:\n  - metric_name: bad-name\n")
        response = await exporter.http.post("/-/reload")
        assert response.status_code == 500
        assert "app.collector.yml:3" in response.text
        page = (await exporter.probe("m", str(tmp_path / "a.db"))).text
        assert value(page, "one") == 1  # still the old collectors

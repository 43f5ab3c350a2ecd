"""Agents that misbehave: OIDs going backwards, a table without end, silence in the middle of a walk.
Each is bounded by the deadline (or the varbind limit) and logged with its reason."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pysnmp.proto import rfc1902

from probe_exporter.config import Config, load_config
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.pipeline import run_probe
from probe_exporter.probers.snmp import scrape as scrape_module

ROOT = (1, 3, 6, 1, 4, 1, 99999, 1)

MODULES = """
auths:
  public: {community: public, version: 2}
modules:
  table:
    walk: [1.3.6.1.4.1.99999.1]
    timeout: 200ms
    retries: 1
    metrics:
    - {name: row, oid: 1.3.6.1.4.1.99999.1, type: gauge, help: row, indexes: [{labelname: i, type: gauge}]}
  table_lenient:
    walk: [1.3.6.1.4.1.99999.1]
    allow_nonincreasing_oids: true
    timeout: 200ms
    retries: 0
    metrics:
    - {name: row, oid: 1.3.6.1.4.1.99999.1, type: gauge, help: row, indexes: [{labelname: i, type: gauge}]}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = tmp_path_factory.mktemp("hostile") / "hostile.yml"
    path.write_text(MODULES)
    return load_config([str(path)])


async def _probe(config: Config, module: str, target: str, timeout: float) -> tuple[bool, str, str, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    outcome = await run_probe(module, config.modules[module], target, timeout, {"auth": "public"}, config)
    return (outcome.success, render_text(collect_sorted([outcome.metrics])).decode(), outcome.log.text(),
            loop.time() - start)


def _rows(first: int, count: int) -> list[tuple[tuple[int, ...], Any]]:
    return [((*ROOT, n), rfc1902.Integer32(n)) for n in range(first, first + count)]


def _endless_table(oid: tuple[int, ...], reps: int) -> list[tuple[tuple[int, ...], Any]]:
    """A table that never ends: always the next `reps` rows after the one asked for."""
    after = oid[len(ROOT)] + 1 if len(oid) > len(ROOT) else 1
    return _rows(after, reps)


async def test_non_increasing_oid_fails_with_reason(config: Config, hostile_agent: Any) -> None:
    # Every answer starts over at row 1: the second request gets back an OID it already had.
    agent = await hostile_agent(lambda oid, reps: _rows(1, min(reps, 3)))
    success, _, log, elapsed = await _probe(config, "table", agent.address, 5)
    assert not success
    assert "OID not increasing: 1.3.6.1.4.1.99999.1.1" in log
    assert elapsed < 3  # well before the 5 s deadline
    assert agent.requests == 2


async def test_allow_nonincreasing_oids_still_ends_at_the_deadline(config: Config, hostile_agent: Any) -> None:
    agent = await hostile_agent(lambda oid, reps: _rows(1, min(reps, 3)))
    success, _, log, elapsed = await _probe(config, "table_lenient", agent.address, 1.0)
    assert not success
    assert elapsed < 1.2
    assert "deadline" in log or "Timeout" in log


async def test_endless_table_is_cut_by_the_varbind_limit(config: Config, hostile_agent: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scrape_module, "MAX_VARBINDS", 500)

    agent = await hostile_agent(_endless_table)
    success, _, log, _ = await _probe(config, "table", agent.address, 5)
    assert not success
    assert "returned more than 500 varbinds" in log
    assert agent.requests <= 25


async def test_endless_table_is_cut_by_the_deadline(config: Config, hostile_agent: Any) -> None:
    agent = await hostile_agent(_endless_table)
    success, _, _, elapsed = await _probe(config, "table", agent.address, 0.5)
    assert not success
    assert elapsed < 0.7
    assert agent.requests > 3


async def test_agent_that_stops_answering_mid_walk(config: Config, hostile_agent: Any) -> None:
    agent = await hostile_agent(_endless_table, answers=3)
    success, text, log, elapsed = await _probe(config, "table", agent.address, 5)
    assert not success
    # 200 ms per request, one retry: the walk gives up after ~0.4 s, long before the deadline.
    assert elapsed < 1.5
    assert "request timeout (after 1 retries)" in log
    assert agent.requests == 5  # 3 answered, then the request and its retry
    assert "probe_success 0" in text


async def test_walk_ends_quietly_when_the_agent_leaves_the_subtree(config: Config, hostile_agent: Any) -> None:
    # An agent answering with rows then leaving the subtree: the walk ends there, no error.
    def respond(oid: tuple[int, ...], reps: int) -> list[tuple[tuple[int, ...], Any]]:
        if len(oid) > len(ROOT):
            return [((1, 3, 6, 1, 4, 1, 99999, 2, 1), rfc1902.Integer32(0))]
        return _rows(1, 2)

    agent = await hostile_agent(respond)
    success, text, log, _ = await _probe(config, "table", agent.address, 5)
    assert success, log
    assert 'row{i="1"} 1' in text.splitlines()
    assert 'row{i="2"} 2' in text.splitlines()

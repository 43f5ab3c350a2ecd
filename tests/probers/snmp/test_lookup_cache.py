"""--snmp.lookup-cache: lookup walks served across scrapes, dropped when the agent restarts."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from probe_exporter.config import Config, load_config
from probe_exporter.exporter import Exporter
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.pipeline import run_probe
from probe_exporter.probers.snmp import lookupcache
from probe_exporter.probers.snmp.plan import compile_module
from probe_exporter.probers.snmp.stats import STATS
from probe_exporter.probers.snmp.values import parse_oid
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.probers.snmp import agents
from tests.probers.snmp.lookup_module import IF_ALIAS, IF_DESCR, IF_NAME, IF_OPER_STATUS, if_status_module
from tests.support.ports import free_port

HOUR = Settings(snmp_lookup_cache=3600.0)


def _config(tmp_path: Path, lookup_cache: str | None = None) -> Config:
    path = tmp_path / "snmp.yml"
    path.write_text("auths:\n  public_v2: {community: public, version: 2}\n"
                    f"modules:\n  if_status:\n{if_status_module(lookup_cache)}")
    return load_config([str(path)])


async def _scrape(config: Config, target: str, settings: Settings, auth: str = "") -> tuple[str, float]:
    params = {"auth": auth} if auth else {}
    outcome = await run_probe("if_status", config.modules["if_status"], target, 5.0, params, config, settings)
    text = render_text(collect_sorted([outcome.metrics])).decode()
    assert outcome.success, outcome.log.text()
    sent = re.search(r'^snmp_scrape_packets_sent\{module="if_status"\} (\S+)$', text, re.M)
    assert sent is not None, text
    return text, float(sent.group(1))


def _snmpd(root: Path, port: int, alias: str, name: str) -> AbstractContextManager[str]:
    """snmpd whose interface 1 has ifAlias `alias` and ifName `name` (snmpd's `override`)."""
    snmpd = shutil.which("snmpd") or "/usr/sbin/snmpd"
    if not Path(snmpd).exists():
        pytest.skip("snmpd is not installed (apt-get install snmpd)")
    conf = root / f"snmpd-{alias}.conf"
    conf.write_text("rocommunity public 127.0.0.1\n"
                    f'override .{IF_ALIAS}.1 octet_str "{alias}"\noverride .{IF_NAME}.1 octet_str "{name}"\n')
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(root / "persist"), "MIBS": ""}
    return agents.running_agent([snmpd, "-f", "-Lf", str(root / "snmpd.log"), "-C", "-c", str(conf), "-p",
                                 str(root / "snmpd.pid"), "-M", "/nonexistent", f"udp:127.0.0.1:{port}"],
                                env, port, "public", "snmpd")


def _counter(counter: object, module: str) -> float:
    for metric in counter.collect():  # type: ignore[attr-defined]
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("module") == module:
                return float(sample.value)
    return 0.0


async def test_labels_follow_renamed_interfaces_after_a_restart(tmp_path: Path) -> None:
    config = _config(tmp_path)
    port = free_port(socket.SOCK_DGRAM)
    with _snmpd(tmp_path, port, "uplink-a", "name-a") as target:
        hits = _counter(STATS.lookup_cache_hits, "if_status")
        _, cold = await _scrape(config, target, HOUR)
        warm_text, warm = await _scrape(config, target, HOUR)
        assert 'ifAlias="uplink-a"' in warm_text and 'ifName="name-a"' in warm_text
        assert warm <= cold / 2, (cold, warm)
        assert _counter(STATS.lookup_cache_hits, "if_status") == hits + 3
        # The same samples as a scrape without the cache, but for the packet counts and timings.
        plain_text, _ = await _scrape(config, target, Settings())
        assert [line for line in warm_text.splitlines() if line.startswith("ifOperStatus")] == [
            line for line in plain_text.splitlines() if line.startswith("ifOperStatus")]
        await asyncio.sleep(1.5)  # the restarted agent's sysUpTime must be behind the one last seen
        await _scrape(config, target, HOUR)
    with _snmpd(tmp_path, port, "uplink-b", "name-b") as target:
        text, sent = await _scrape(config, target, HOUR)
        assert 'ifAlias="uplink-b"' in text and 'ifName="name-b"' in text
        assert "uplink-a" not in text and "name-a" not in text
        assert sent >= cold  # every lookup walked again
        _, again = await _scrape(config, target, HOUR)
        assert again == warm


async def test_module_zero_turns_the_flag_off_and_a_module_age_turns_it_on(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    with _snmpd(tmp_path, port, "a", "b") as target:
        off = _config(tmp_path, "0s")
        _, first = await _scrape(off, target, HOUR)
        _, second = await _scrape(off, target, HOUR)
        assert first == second
        on = _config(tmp_path, "1h")
        await _scrape(on, target, Settings())
        _, warm = await _scrape(on, target, Settings())
        assert warm < first


async def test_expired_tables_are_walked_again(tmp_path: Path) -> None:
    config = _config(tmp_path, "10ms")
    port = free_port(socket.SOCK_DGRAM)
    with _snmpd(tmp_path, port, "a", "b") as target:
        _, cold = await _scrape(config, target, Settings())
        await asyncio.sleep(0.05)
        _, later = await _scrape(config, target, Settings())
        assert later == cold


def test_only_walks_no_metric_overlaps_are_lookup_walks(tmp_path: Path) -> None:
    plan = compile_module(_config(tmp_path).modules["if_status"].snmp)  # type: ignore[arg-type]
    assert plan.lookup_only == {parse_oid(IF_ALIAS), parse_oid(IF_DESCR), parse_oid(IF_NAME)}
    assert parse_oid(IF_OPER_STATUS) not in plan.lookup_only


def test_cache_is_bounded_and_a_reboot_empties_a_target() -> None:
    cache = lookupcache.LookupCache(size=2)
    first = cache.tables(("a",), 100, None)
    first.walks[(1,)] = (0.0, [])
    cache.tables(("b",), 100, None)
    cache.tables(("a",), 150, None)  # "a" used last: "b" is the one to go
    cache.tables(("c",), 100, None)
    assert len(cache) == 2
    assert cache.tables(("a",), 200, None).walks  # uptime went on: kept
    assert not cache.tables(("a",), 10, None).walks  # uptime went back: a reboot
    cache.tables(("v3",), 100, 7).walks[(1,)] = (0.0, [])
    assert not cache.tables(("v3",), 200, 8).walks  # engine boots changed


async def test_v3_lookups_are_cached_per_user(tmp_path: Path, snmpd_agent: str, test_auths_yml: Path) -> None:
    path = tmp_path / "if_status.yml"
    path.write_text(f"modules:\n  if_status:\n{if_status_module('1h')}")
    config = load_config([str(test_auths_yml), str(path)])
    cold_text, cold = await _scrape(config, snmpd_agent, Settings(), "v3sha_aes")
    warm_text, warm = await _scrape(config, snmpd_agent, Settings(), "v3sha_aes")
    assert warm <= cold / 2 and warm_text.count("ifOperStatus{") == cold_text.count("ifOperStatus{") > 0
    _, other_user = await _scrape(config, snmpd_agent, Settings(), "v3md5_des")  # another auth: its own tables
    assert other_user > warm


async def test_hits_and_misses_on_the_metrics_page(tmp_path: Path) -> None:
    config_path = tmp_path / "snmp.yml"
    config_path.write_text("auths:\n  public_v2: {community: public}\n"
                           f"modules:\n  if_status:\n{if_status_module('1h')}")
    port = free_port(socket.SOCK_DGRAM)
    with _snmpd(tmp_path, port, "a", "b") as target:
        app = create_app(Exporter(Settings(config_files=[str(config_path)])))
        async with LifespanManager(app) as manager, httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as http:
            for _ in range(2):
                assert (await http.get(f"/snmp?target={target}&module=if_status")).status_code == 200
            text = (await http.get("/metrics")).text
    hits = re.search(r'^probe_exporter_snmp_lookup_cache_hits_total\{module="if_status"\} (\S+)$', text, re.M)
    misses = re.search(r'^probe_exporter_snmp_lookup_cache_misses_total\{module="if_status"\} (\S+)$', text, re.M)
    assert hits is not None and misses is not None, text
    assert float(hits.group(1)) >= 3 and float(misses.group(1)) >= 3

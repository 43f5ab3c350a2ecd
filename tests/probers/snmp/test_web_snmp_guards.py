"""/snmp and multi-module /probe go through the same guards as every probe: allowed_targets (403),
the concurrency limits (waiting counts against the deadline) and the history."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.support.ports import free_port

MODULES = """auths:
  cisco: {community: cisco_16_switch, version: 2}
modules:
  sysname:
    prober: snmp
    allowed_targets: [127.0.0.1/32]
    snmp:
      walk: [1.3.6.1.2.1.1.5]
      metrics:
        - {name: sysName, oid: 1.3.6.1.2.1.1.5, type: DisplayString, help: The name of the node}
  one_at_a_time:
    prober: snmp
    max_concurrency: 1
    snmp:
      walk: [1.3.6.1.2.1.1.5]
      timeout: 10s
      retries: 0
      metrics:
        - {name: sysName, oid: 1.3.6.1.2.1.1.5, type: DisplayString, help: The name of the node}
  sysname_elsewhere:
    prober: snmp
    allowed_targets: [192.0.2.0/24]
    snmp:
      walk: [1.3.6.1.2.1.1.5]
      metrics:
        - {name: sysName, oid: 1.3.6.1.2.1.1.5, type: DisplayString, help: The name of the node}
"""


@pytest.fixture(scope="module")
def guards_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = tmp_path_factory.mktemp("guards") / "snmp.yml"
    path.write_text(MODULES)
    return path


@pytest.fixture(scope="module")
async def exporter_client(guards_config: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Exporter(Settings(config_files=[str(guards_config)])))
    async with LifespanManager(app) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as http:
            yield http


async def test_snmp_allowed_target_works_and_lands_in_history(exporter_client: httpx.AsyncClient,
                                                              snmpsim_agent: str) -> None:
    response = await exporter_client.get("/snmp", params={"target": snmpsim_agent, "auth": "cisco",
                                                           "module": "sysname"})
    assert response.status_code == 200, response.text
    assert 'sysName{sysName="Profiler3750"} 1' in response.text.splitlines()
    page = (await exporter_client.get("/")).text
    assert "sysname" in page and snmpsim_agent in page
    log = await exporter_client.get("/logs", params={"target": snmpsim_agent, "module": "sysname"})
    assert log.status_code == 200


@pytest.mark.parametrize("path", ["/snmp", "/probe"])
async def test_target_outside_allowed_targets_is_403_on_every_route(exporter_client: httpx.AsyncClient,
                                                                    snmpsim_agent: str, path: str) -> None:
    response = await exporter_client.get(path, params={"target": snmpsim_agent, "auth": "cisco",
                                                        "module": "sysname,sysname_elsewhere"})
    assert response.status_code == 403
    assert "sysname_elsewhere" in response.text and response.text.count("\n") == 1
    metrics = (await exporter_client.get("/metrics")).text
    assert 'probe_exporter_targets_denied_total{module="sysname_elsewhere"}' in metrics


async def test_snmp_waiting_for_a_slot_counts_against_the_deadline(exporter_client: httpx.AsyncClient) -> None:
    silent = f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"  # nothing answers: the first scrape holds the slot

    async def scrape(scrape_timeout: str) -> httpx.Response:
        return await exporter_client.get("/snmp", params={"target": silent, "auth": "cisco", "module": "one_at_a_time"},
                                         headers={"X-Prometheus-Scrape-Timeout-Seconds": scrape_timeout})

    holder = asyncio.create_task(scrape("3"))
    await asyncio.sleep(0.3)
    start = asyncio.get_running_loop().time()
    waiting = await scrape("1.5")
    assert asyncio.get_running_loop().time() - start < 1.5
    assert waiting.status_code == 503  # the exporter was busy: not the device's failure
    assert "could not start before its deadline" in waiting.text
    assert (await holder).status_code == 500  # the silent agent itself: upstream's 500

"""Side by side with Debian's snmp_exporter 0.21 against the same snmpsim agent.

0.21 only reads the pre-0.23 format, so the test converts the generated if_mib and system modules
(and the type-coverage module) to it, with the auth inside each module; probe_exporter loads that
same old-format file. Every sample line must be identical, apart from the snmp_scrape_* lines
(timings, and HEAD's `module` label that 0.21 lacks).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from asgi_lifespan import LifespanManager

from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.probers.snmp import agents
from tests.probers.snmp.conftest import TYPES_MODULE
from tests.support.ports import free_port

BINARY = Path("/usr/bin/prometheus-snmp-exporter")

pytestmark = [pytest.mark.reference, pytest.mark.skipif(
    not BINARY.exists(), reason=f"{BINARY} not installed (apt-get install prometheus-snmp-exporter)")]

# (module, community): the modules of the generated snmp.yml that 0.21's schema accepts unchanged.
CASES = [("if_mib", "cisco_16_switch"), ("system", "cisco_16_switch"), ("types", "types")]


@pytest.fixture(scope="module")
def old_format_file(shared_snmp_yml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    generated = yaml.load(shared_snmp_yml.read_text(), Loader=yaml.CSafeLoader)["modules"]
    generated["types"] = yaml.safe_load(TYPES_MODULE)["types"]
    old = {}
    for name, community in CASES:
        module = dict(generated[name])
        module["version"] = 2
        module["auth"] = {"community": community}
        old[name] = module
    path = tmp_path_factory.mktemp("sbs") / "snmp021.yml"
    path.write_text(yaml.safe_dump(old, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def go_exporter(old_format_file: Path) -> Iterator[str]:
    with agents.running_snmp_exporter(BINARY, old_format_file) as url:
        yield url


@pytest.fixture(scope="module")
async def ours(old_format_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Exporter(Settings(config_files=[str(old_format_file)])))
    async with LifespanManager(app) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://ours") as http:
            yield http


def _comparable(text: str) -> list[str]:
    return [line for line in text.splitlines() if "snmp_scrape_" not in line]


@pytest.mark.parametrize(("module", "community"), CASES)
async def test_identical_samples(go_exporter: str, ours: httpx.AsyncClient, snmpsim_agent: str, module: str,
                                 community: str) -> None:
    query = f"/snmp?target={snmpsim_agent}&module={module}"
    async with httpx.AsyncClient(timeout=30) as client:
        go_response, our_response = await asyncio.gather(client.get(go_exporter + query), ours.get(query))
    assert go_response.status_code == 200, go_response.text
    assert our_response.status_code == 200, our_response.text
    go_lines, our_lines = _comparable(go_response.text), _comparable(our_response.text)
    assert len(go_lines) > 10
    assert our_lines == go_lines
    assert our_response.headers["content-type"] == go_response.headers["content-type"]


async def test_both_fail_on_an_unanswering_agent(go_exporter: str, ours: httpx.AsyncClient) -> None:
    port = free_port(socket.SOCK_DGRAM)
    query = f"/snmp?target=127.0.0.1:{port}&module=system"
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": "3"}
    async with httpx.AsyncClient(timeout=60) as client:
        go_response, our_response = await asyncio.gather(client.get(go_exporter + query, headers=headers),
                                                         ours.get(query, headers=headers))
    assert go_response.status_code == our_response.status_code == 500
    prefix = "An error has occurred while serving metrics:\n\n"
    assert go_response.text.startswith(prefix) and our_response.text.startswith(prefix)

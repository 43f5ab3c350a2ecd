"""`/snmp` with snmp_exporter's parameters and status codes, and `/probe` with several SNMP modules."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from asgi_lifespan import LifespanManager

from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.support.ports import free_port


@pytest.fixture(scope="module")
async def client(shared_snmp_yml: Path, test_auths_yml: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Exporter(Settings(config_files=[str(shared_snmp_yml), str(test_auths_yml)])))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@pytest.mark.parametrize(("query", "message"), [
    ("", "'target' parameter must be specified once"),
    ("target=a&target=b", "'target' parameter must be specified once"),
    ("target=a&auth=x&auth=y", "'auth' parameter must only be specified once"),
    ("target=a&snmp_context=x&snmp_context=y", "'snmp_context' parameter must only be specified once"),
    ("target=a&snmp_engineid=00&snmp_engineid=01", "'snmp_engineid' parameter must only be specified once"),
    ("target=a&module=", "'module' parameter must contain at least one module name"),
    ("target=a&module=,", "'module' parameter must contain at least one module name"),
    ("target=a&module=nope", "Unknown module 'nope'"),
    ("target=a&module=if_mib,nope", "Unknown module 'nope'"),
    ("target=a&auth=nope", "Unknown auth 'nope'"),
])
async def test_snmp_bad_requests(client: httpx.AsyncClient, query: str, message: str) -> None:
    response = await client.get(f"/snmp?{query}")
    assert response.status_code == 400
    assert response.text == message + "\n"


async def test_snmp_several_modules_repeated_and_comma_separated(client: httpx.AsyncClient,
                                                                 snmpsim_agent: str) -> None:
    response = await client.get(f"/snmp?target={snmpsim_agent}&auth=cisco&module=system,if_mib&module=system")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = response.text.splitlines()
    assert "ifNumber 59" in lines
    assert 'sysName{sysName="Profiler3750"} 1' in lines
    assert 'snmp_scrape_pdus_returned{module="if_mib"} 2091' in lines
    assert 'snmp_scrape_pdus_returned{module="system"} 314' in lines
    assert not any(line.startswith("probe_") for line in lines)  # no success gauge in upstream's mode


async def test_snmp_default_module_is_if_mib(client: httpx.AsyncClient, snmpsim_agent: str) -> None:
    response = await client.get(f"/snmp?target={snmpsim_agent}&auth=cisco")
    assert response.status_code == 200
    assert "ifNumber 59" in response.text.splitlines()


async def test_snmp_failure_is_a_500_with_upstreams_body(client: httpx.AsyncClient, snmpsim_agent: str) -> None:
    response = await client.get(f"/snmp?target={snmpsim_agent}&auth=wrong&module=system",
                                headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
    assert response.status_code == 500
    assert response.text.startswith("An error has occurred while serving metrics:\n\n")
    assert 'constLabels: {module="system"}' in response.text
    assert "request timeout" in response.text
    assert "not-the-community" not in response.text


async def test_probe_several_modules_keeps_the_ones_that_succeeded(client: httpx.AsyncClient,
                                                                   snmpsim_agent: str) -> None:
    # Two modules (repeated `module`) against one agent: both succeed and their samples are merged.
    response = await client.get(f"/probe?target={snmpsim_agent}&auth=cisco&module=system&module=if_mib")
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert "probe_success 1" in lines
    assert 'probe_snmp_module_success{module="if_mib"} 1' in lines
    assert 'probe_snmp_module_success{module="system"} 1' in lines
    assert "ifNumber 59" in lines


async def test_probe_partial_failure_keeps_the_good_module(client: httpx.AsyncClient, snmpsim_agent: str) -> None:
    # `clash` renders two series with the same name and labels: upstream's whole-scrape 500.
    response = await client.get(f"/probe?target={snmpsim_agent}&auth=types&module=types,clash")
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert "probe_success 0" in lines
    assert 'probe_snmp_module_success{module="types"} 1' in lines
    assert 'probe_snmp_module_success{module="clash"} 0' in lines
    assert "tGaugeNeg -5" in lines
    assert not any(line.startswith("tSame") for line in lines)
    assert 'snmp_scrape_pdus_returned{module="types"} 29' in lines
    assert not any(line.startswith("snmp_scrape_pdus_returned{module=\"clash\"}") for line in lines)


async def test_snmp_duplicate_series_is_a_500(client: httpx.AsyncClient, snmpsim_agent: str) -> None:
    response = await client.get(f"/snmp?target={snmpsim_agent}&auth=types&module=clash")
    assert response.status_code == 500
    assert "was collected before with the same name and label values" in response.text


async def test_probe_unknown_module_in_list(client: httpx.AsyncClient, snmpsim_agent: str) -> None:
    response = await client.get(f"/probe?target={snmpsim_agent}&module=if_mib,nope")
    assert response.status_code == 400
    assert response.text == 'Unknown module "nope"\n'


async def test_probe_single_snmp_module_unreachable_is_200_with_failure(client: httpx.AsyncClient) -> None:

    port = free_port(socket.SOCK_DGRAM)  # nothing listens there
    response = await client.get(f"/probe?target=127.0.0.1:{port}&module=system&auth=cisco",
                                headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert "probe_success 0" in lines
    assert any(line.startswith("probe_duration_seconds ") for line in lines)
    assert 'probe_snmp_module_success{module="system"} 0' in lines


async def test_metrics_has_exporter_wide_snmp_metrics(client: httpx.AsyncClient, snmpsim_agent: str) -> None:
    await client.get(f"/snmp?target={snmpsim_agent}&auth=cisco&module=system")
    text = (await client.get("/metrics")).text
    lines = text.splitlines()
    # Every SNMP module has its duration series from the start (other tests in this process may have
    # scraped apcups already: the statistics are process-wide, as upstream's).
    assert any(line.startswith('snmp_collection_duration_seconds_count{module="apcups"} ') for line in lines)
    assert any(line.startswith('snmp_collection_duration_seconds_count{module="system"} ') and
               not line.endswith(" 0") for line in lines)
    for name in ("snmp_packets_total", "snmp_packet_retries_total", "snmp_request_errors_total",
                 "snmp_request_in_flight", "snmp_packet_duration_seconds_bucket", "snmp_unexpected_pdu_type_total"):
        assert any(line.startswith(name) for line in lines), name


async def test_probe_debug_output_for_an_snmp_module(client: httpx.AsyncClient, snmpsim_agent: str) -> None:
    response = await client.get(f"/probe?target={snmpsim_agent}&module=system&auth=wrong&debug=true",
                                headers={"X-Prometheus-Scrape-Timeout-Seconds": "1"})
    assert response.status_code == 200
    text = response.text
    assert text.startswith("Logs for the probe:\n")
    assert "Error scraping target" in text
    assert "Module configuration:\nprober: snmp\n" in text
    assert "not-the-community" not in text


async def test_config_page_of_the_full_generated_snmp_yml_shows_every_module_and_no_secret(
        client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    response = await client.get("/config")
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = await client.get("/config")
    second = time.perf_counter() - start
    with capsys.disabled():  # measured, not asserted (bench/ owns numbers)
        print(f"\n/config of the full snmp.yml: {first:.3f} s, then {second:.4f} s")
    assert response.status_code == 200 and again.text == response.text
    page = yaml.load(response.text, Loader=yaml.CSafeLoader)
    snmp_modules = [name for name, module in page["modules"].items() if module["prober"] == "snmp"]
    assert len(snmp_modules) == 53 + 5  # the generated file's, and test_auths_yml's type-coverage modules
    assert page["modules"]["if_mib"]["snmp"]["walk"] == ["1.3.6.1.2.1.2", "1.3.6.1.2.1.31.1.1"]
    assert {page["auths"][name]["community"] for name in ("public_v2", "cisco", "wrong")} == {"<secret>"}
    assert {page["auths"]["v3sha_aes"][key] for key in ("password", "priv_password")} == {"<secret>"}
    for secret in ("cisco_16_switch", "not-the-community", "authpass123", "privpass123", "not-the-password"):
        assert secret not in response.text
    assert "community: public" not in response.text

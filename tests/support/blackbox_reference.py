"""Side by side with Debian's blackbox_exporter: the Go binary, one probe through both, the comparison."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from probe_exporter.config import load_config
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.pipeline import run_probe
from tests.support.ports import free_port

BLACKBOX_BINARY = Path("/usr/bin/prometheus-blackbox-exporter")
REQUIRES_BLACKBOX = [pytest.mark.reference, pytest.mark.skipif(
    not BLACKBOX_BINARY.exists(),
    reason=f"{BLACKBOX_BINARY} not installed (apt-get install prometheus-blackbox-exporter)")]

# family name -> label set -> value
Series = dict[frozenset[tuple[str, str]], float]
Families = dict[str, Series]


@contextlib.asynccontextmanager
async def blackbox_exporter(config_file: Path) -> AsyncIterator[str]:
    """Run blackbox_exporter with `config_file` on a loopback port; yields its base URL once healthy."""
    listen = f"127.0.0.1:{free_port()}"
    process = await asyncio.create_subprocess_exec(
        str(BLACKBOX_BINARY), f"--config.file={config_file}", f"--web.listen-address={listen}", "--log.level=error",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://{listen}/-/healthy")).status_code == 200:
                        break
                if process.returncode is not None:
                    assert process.stderr is not None
                    raise RuntimeError(f"blackbox_exporter exited: {(await process.stderr.read()).decode()}")
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"blackbox_exporter did not answer on {listen}")
        yield f"http://{listen}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await process.wait()


def parse_families(text: str) -> Families:
    families: Families = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            families.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return families


def is_timing(name: str) -> bool:
    return "duration" in name or name == "probe_dns_lookup_time_seconds"


@dataclass
class BothProbes:
    go: Families
    ours: Families
    log: str  # our probe's log, for assertion messages


async def probe_both(go_url: str, config_file: Path, module_name: str, target: str,
                     default_timeout: float) -> BothProbes:
    """The same (module, target) through blackbox_exporter's /probe and our runner, with the timeout
    blackbox computes without a scrape-timeout header: the module's, else `default_timeout`.

    Our serialnumber label of probe_ssl_last_chain_info (added in 0.26) and probe_timeout_seconds
    (master) are dropped, as 0.23 lacks them."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{go_url}/probe", params={"module": module_name, "target": target})
    assert response.status_code == 200, response.text
    module = load_config([str(config_file)]).modules[module_name]
    outcome = await run_probe(module_name, module, target, module.timeout or default_timeout)
    ours = parse_families(render_text(collect_sorted([outcome.metrics])).decode())
    ours.pop("probe_timeout_seconds", None)
    if "probe_ssl_last_chain_info" in ours:
        ours["probe_ssl_last_chain_info"] = {
            frozenset((k, v) for k, v in labels if k != "serialnumber"): value
            for labels, value in ours["probe_ssl_last_chain_info"].items()}
    return BothProbes(parse_families(response.text), ours, outcome.log.text())


def assert_same_samples(both: BothProbes) -> None:
    """Same family names, same label sets, same values except for timings."""
    go, ours = both.go, both.ours
    assert sorted(ours) == sorted(go), both.log
    for name in go:
        assert sorted(map(sorted, ours[name])) == sorted(map(sorted, go[name])), (name, both.log)
        if is_timing(name):
            continue
        for labels, go_value in go[name].items():
            assert ours[name][labels] == go_value, (name, dict(labels), both.log)

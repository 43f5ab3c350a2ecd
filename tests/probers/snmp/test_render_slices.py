"""A 200k-varbind walk renders in slices: the event loop keeps serving other work meanwhile, and
the result is the same as rendering in one go. Also: --snmp.module-concurrency walks modules at
once against a real snmpd, with the same samples as one at a time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import yaml

from probe_exporter.config import Config, load_config
from probe_exporter.config.snmp import SnmpModule
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.pipeline import run_probe
from probe_exporter.probers.snmp import render
from probe_exporter.probers.snmp.community import CommunityTransport
from probe_exporter.probers.snmp.plan import compile_module
from probe_exporter.probers.snmp.values import OCTETS, UNSIGNED
from probe_exporter.settings import Settings
from tests.probers.snmp.differential import pdu_renderer  # noqa: F401  (autouse: both render paths)

ROWS = 10_000
IF_TABLE = (1, 3, 6, 1, 2, 1, 2, 2, 1)


@pytest.fixture(scope="module")
def if_mib(shared_snmp_yml: Path) -> SnmpModule:
    generated = yaml.load(shared_snmp_yml.read_text(), Loader=yaml.CSafeLoader)["modules"]["if_mib"]
    return SnmpModule.model_validate(generated)


def _huge_walk() -> list[tuple[tuple[int, ...], tuple[int, object]]]:
    """ifTable of 10,000 interfaces: 20 columns, 200,000 varbinds (ifDescr is column 2)."""
    pdus: list[tuple[tuple[int, ...], tuple[int, object]]] = []
    for column in range(1, 21):
        for row in range(1, ROWS + 1):
            value = (OCTETS, f"eth{row}".encode()) if column == 2 else (UNSIGNED, row * column)
            pdus.append(((*IF_TABLE, column, row), value))
    return pdus


async def test_a_200k_varbind_render_lets_the_loop_run(if_mib: SnmpModule) -> None:
    plan = compile_module(if_mib)
    pdus = _huge_walk()
    assert len(pdus) == 200_000
    turns = 0
    longest = 0.0
    stop = False

    async def other_work() -> None:
        nonlocal turns, longest
        while not stop:
            before = time.perf_counter()
            await asyncio.sleep(0)
            longest = max(longest, time.perf_counter() - before)
            turns += 1

    ticker = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    turns = 0
    sliced = render.Families()
    await render.render_module_sliced(plan, pdus, sliced)
    stop = True
    await ticker
    # One turn of the other task per slice at least: the render never held the loop for long.
    assert turns >= len(pdus) // render.RENDER_SLICE - 1, (turns, longest)
    whole = render.Families()
    render.render_module(plan, pdus, whole)
    assert sliced.rendered.errors == whole.rendered.errors == []
    assert {name: family.samples for name, family in sliced.rendered.families.items()} == {
        name: family.samples for name, family in whole.rendered.families.items()}
    assert len(sliced.rendered.families["ifInOctets"].samples) == ROWS
    # Samples come in exposition order (label values sorted as strings), so find row 42 by its index.
    (sample,) = [s for s in sliced.rendered.families["ifInOctets"].samples if s.labels["ifIndex"] == "42"]
    assert sample.labels["ifDescr"] == "eth42" and sample.value == 420.0


# --- --snmp.module-concurrency against snmpd -------------------------------------------------------

MODULES = ["system", "if_mib", "hrStorage", "ip_mib"]


@pytest.fixture(scope="module")
def config(shared_snmp_yml: Path, test_auths_yml: Path) -> Config:
    return load_config([str(shared_snmp_yml), str(test_auths_yml)])


def _steady(text: str) -> list[str]:
    """Lines that do not move between two scrapes of the same agent (no counters, clocks, timings)."""
    volatile = ("sysUpTime", "snmp_scrape_", "probe_duration", "if", "hrStorageUsed", "hrStorageAllocation")
    return [line for line in text.splitlines()
            if not (line.split(" ", 3)[2] if line.startswith("# ") else line).startswith(volatile)]


@pytest.mark.parametrize("auth", ["snmpd_public", "v3sha_aes"])
async def test_module_concurrency_walks_at_once_with_the_same_samples(
        config: Config, snmpd_agent: str, auth: str, monkeypatch: pytest.MonkeyPatch) -> None:
    most_pending = 0
    original = CommunityTransport.exchange

    async def counting(self: CommunityTransport, *args: object) -> object:
        nonlocal most_pending
        result = original(self, *args)  # type: ignore[arg-type]
        most_pending = max(most_pending, len(self.pending) + 1)
        return await result

    monkeypatch.setattr(CommunityTransport, "exchange", counting)
    texts = []
    for concurrency in (1, 3):
        most_pending = 0
        outcome = await run_probe("system", config.modules["system"], snmpd_agent, 10,
                                  {"auth": auth, "module": ",".join(MODULES)}, config,
                                  Settings(snmp_module_concurrency=concurrency))
        assert outcome.success, outcome.log.text()
        texts.append(render_text(collect_sorted([outcome.metrics])).decode())
        # One request in flight at a time, or several modules' at once.
        assert most_pending == 1 if concurrency == 1 else most_pending >= 2, (concurrency, most_pending)
    for module in MODULES:
        assert f'probe_snmp_module_success{{module="{module}"}} 1' in texts[1]
    assert _steady(texts[0]) == _steady(texts[1])
    assert any(line.startswith("hrStorageSize{") for line in texts[1].splitlines())
    assert 'sysName{sysName="snmpd-under-test"} 1' in texts[1].splitlines()

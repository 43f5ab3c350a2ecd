"""Rendering while the walk goes on (progressive.py): the same samples as rendering after the walk,
for every module of the generated snmp.yml against the recorded Cisco switch and a real snmpd;
samples that need no other PDU are rendered between answers; those whose lookups come from a later
walk root wait for it; a table handed over in one piece is still rendered in slices."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from probe_exporter.config import Config, load_config
from probe_exporter.config.snmp import SnmpModule
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.pipeline import run_probe
from probe_exporter.probers.snmp import render, scrape
from probe_exporter.probers.snmp.plan import compile_module
from probe_exporter.probers.snmp.progressive import ProgressiveRender
from probe_exporter.probers.snmp.values import OCTETS, UNSIGNED
from tests.probers.snmp.differential import pdu_renderer  # noqa: F401  (autouse: both render paths)
from tests.probers.snmp.test_render_slices import IF_TABLE, ROWS, _huge_walk, _steady

IF_X_TABLE = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)


@pytest.fixture(scope="module")
def config(shared_snmp_yml: Path, test_auths_yml: Path) -> Config:
    return load_config([str(shared_snmp_yml), str(test_auths_yml)])


@pytest.fixture(scope="module")
def generated_names(shared_snmp_yml: Path) -> list[str]:
    return list(yaml.load(shared_snmp_yml.read_text(), Loader=yaml.CSafeLoader)["modules"])


@pytest.fixture(scope="module")
def if_mib(shared_snmp_yml: Path) -> SnmpModule:
    generated = yaml.load(shared_snmp_yml.read_text(), Loader=yaml.CSafeLoader)["modules"]["if_mib"]
    return SnmpModule.model_validate(generated)


async def _scrape(config: Config, module: str, target: str, auth: str, progressive: bool,
                  monkeypatch: pytest.MonkeyPatch) -> tuple[bool, str]:
    monkeypatch.setattr(scrape, "PROGRESSIVE", progressive)
    outcome = await run_probe(module, config.modules[module], target, 10, {"auth": auth}, config)
    text = render_text(collect_sorted([outcome.metrics])).decode()
    return outcome.success, "\n".join(line for line in text.splitlines()
                                      if not line.startswith(("snmp_scrape_", "probe_duration")))


async def test_every_generated_module_renders_the_same_on_the_recorded_switch(
        config: Config, generated_names: list[str], snmpsim_agent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    generated = generated_names
    assert len(generated) == 53
    with_samples = 0
    for name in generated:
        assert scrape.plan_of(config.modules[name]).progressive, name  # so the comparison below means something
        after = await _scrape(config, name, snmpsim_agent, "cisco", False, monkeypatch)
        during = await _scrape(config, name, snmpsim_agent, "cisco", True, monkeypatch)
        assert during == after, name
        with_samples += "\n# TYPE " in during[1]
    assert with_samples >= 2  # if_mib and system at least answer with real data


@pytest.mark.parametrize("module", ["system", "if_mib", "hrStorage", "ip_mib", "hrSWRun"])
async def test_the_same_samples_from_snmpd(config: Config, snmpd_agent: str, module: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    after = await _scrape(config, module, snmpd_agent, "snmpd_public", False, monkeypatch)
    during = await _scrape(config, module, snmpd_agent, "snmpd_public", True, monkeypatch)
    assert after[0] and during[0]
    steady_after, steady_during = _steady(after[1]), _steady(during[1])
    if module == "hrSWRun":  # processes come and go between two scrapes: compare the families only
        steady_after = [line for line in steady_after if line.startswith("#")]
        steady_during = [line for line in steady_during if line.startswith("#")]
    assert steady_during == steady_after
    assert any(not line.startswith("#") for line in during[1].splitlines())


def _if_tables(rows: int) -> tuple[list[tuple[tuple[int, ...], tuple[int, object]]], list[tuple[tuple[int, ...],
                                                                                          tuple[int, object]]]]:
    """ifTable (ifIndex, ifDescr, ifInOctets) and ifXTable (ifName) of `rows` interfaces."""
    if_table = [((*IF_TABLE, column, row), (OCTETS, f"eth{row}".encode()) if column == 2 else (UNSIGNED, row * 10))
                for column in (1, 2, 10) for row in range(1, rows + 1)]
    if_x_table = [((*IF_X_TABLE, 1, row), (OCTETS, f"port{row}".encode())) for row in range(1, rows + 1)]  # ifName
    return if_table, if_x_table


async def test_samples_render_between_answers_and_lookups_wait_for_their_walk(if_mib: SnmpModule) -> None:
    plan = compile_module(if_mib)
    if_table, if_x_table = _if_tables(3)
    ifnumber = ((1, 3, 6, 1, 2, 1, 2, 1, 0), (UNSIGNED, 3))
    out = render.Families()
    progress = ProgressiveRender(plan, out)
    progress.phase_done()  # no gets
    progress.received([ifnumber, *if_table[:4]])
    await asyncio.sleep(0)  # the loop's turn: what a walk gives while it waits for the next answer
    # ifNumber needs no other PDU; ifTable's columns are labelled from ifXTable (ifName), not walked yet.
    assert [f.name for f in out.rendered.families.values()] == ["ifNumber"]
    progress.received(if_table[4:])
    progress.phase_done()  # the interfaces walk is complete
    progress.received(if_x_table)
    await asyncio.sleep(0)
    assert "ifInOctets" not in out.rendered.families
    progress.phase_done()  # ifXTable is complete: the waiting rows are ready
    await progress.finish()
    whole = render.Families()
    render.render_module(plan, [ifnumber, *if_table, *if_x_table], whole)
    assert {n: f.samples for n, f in out.rendered.families.items()} == {
        n: f.samples for n, f in whole.rendered.families.items()}
    (sample,) = [s for s in out.rendered.families["ifInOctets"].samples if s.labels["ifIndex"] == "2"]
    assert sample.labels["ifName"] == "port2" and sample.labels["ifDescr"] == "eth2"


async def test_a_table_handed_over_whole_renders_in_slices(if_mib: SnmpModule) -> None:
    plan = compile_module(if_mib)
    pdus = _huge_walk()
    turns = 0
    stop = False

    async def other_work() -> None:
        nonlocal turns
        while not stop:
            await asyncio.sleep(0)
            turns += 1

    ticker = asyncio.create_task(other_work())
    out = render.Families()
    progress = ProgressiveRender(plan, out)
    progress.phase_done()
    progress.received(pdus)  # as the lookup cache hands over a whole table
    progress.phase_done()
    progress.phase_done()
    await progress.finish()
    stop = True
    await ticker
    assert turns >= len(pdus) // render.RENDER_SLICE - 1
    assert len(out.rendered.families["ifInOctets"].samples) == ROWS


def test_overlapping_walks_or_filters_render_after_the_walk(if_mib: SnmpModule) -> None:
    assert compile_module(if_mib).progressive
    overlapping = if_mib.model_copy(update={"walk": [*if_mib.walk, "1.3.6.1.2.1.2.2"]})
    assert not compile_module(overlapping).progressive
    nonincreasing = if_mib.model_copy(update={"allow_nonincreasing_oids": True})
    assert not compile_module(nonincreasing).progressive


async def test_with_another_walk_in_flight_answers_wait_for_finish(if_mib: SnmpModule) -> None:
    plan = compile_module(if_mib)
    ifnumber = ((1, 3, 6, 1, 2, 1, 2, 1, 0), (UNSIGNED, 3))
    other = ProgressiveRender(plan, render.Families())  # another module's walk in this worker
    out = render.Families()
    progress = ProgressiveRender(plan, out)
    progress.phase_done()
    progress.received([ifnumber])
    await asyncio.sleep(0)
    assert not out.rendered.families  # the other walk's packets fill the waits: nothing rendered meanwhile
    other.cancel()
    progress.received([])
    progress.phase_done()  # alone again: the queue is rendered between answers once more
    await asyncio.sleep(0)
    assert list(out.rendered.families) == ["ifNumber"]
    await progress.finish()

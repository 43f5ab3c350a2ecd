"""render_pdu's C path (probers/snmp/_renderfast.c) against the Python one (render._render_pdu_python):
every module of the real generated snmp.yml, fed random rows of random values of every type, gives the
same families (names, HELP, TYPE, series with their sort keys, lines, labels and values), errors and
debug lines both ways. Modules are also rendered two by two into one response, for clashes of HELP
and TYPE and for duplicate series."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from probe_exporter.config import Config, load_config
from probe_exporter.exposition import go_float
from probe_exporter.probers.snmp import render
from probe_exporter.probers.snmp.plan import ModulePlan, compile_module
from probe_exporter.probers.snmp.values import (
    COUNTER64,
    DOUBLE,
    FLOAT,
    INTEGER,
    IPADDRESS,
    NO_SUCH,
    NULL,
    OCTETS,
    OID,
    UNSIGNED,
    Value,
)
from tests.probers.snmp.differential import require_c_renderer

_renderfast = require_c_renderer()

_STRINGS = (b"", b"eth0", b"GigabitEthernet0/1", b'a "quoted" \\ back\nslash', b"\xff\xfe invalid", b"\x00\x01\x02",
            "caf\u00e9 \u2603".encode(), b"x" * 300)


def _value(rng: random.Random) -> Value:
    kind = rng.random()
    if kind < 0.2:
        return INTEGER, rng.choice([0, 1, -1, 2, 7, 2**31 - 1, -(2**31), rng.randrange(-(2**31), 2**31)])
    if kind < 0.4:
        return UNSIGNED, rng.choice([0, 1, 999_999, 1_000_000, 1_234_000, 4294967295, rng.randrange(2**32)])
    if kind < 0.5:
        return COUNTER64, rng.choice([0, 2**53 - 1, 2**53, 2**53 + 1, 2**64 - 1, 10**16, rng.randrange(2**64)])
    if kind < 0.75:
        return OCTETS, rng.choice([*_STRINGS, bytes(rng.randrange(256) for _ in range(rng.randrange(12)))])
    return rng.choice([(OID, "1.3.6.1.4.1.9.1.1"), (OID, "0.0"), (IPADDRESS, "10.0.0.1"), (IPADDRESS, ""),
                       (NULL, None), (NO_SUCH, None), (FLOAT, 1.5), (DOUBLE, -0.25), (FLOAT, 3e20)])


def _columns(plan: ModulePlan) -> list[tuple[int, ...]]:
    """Every OID a sample of the module can read: metrics, their lookups, combined types' columns."""
    columns: set[tuple[int, ...]] = set()
    for metric_plan in plan.metrics.values():
        columns.add(metric_plan.oid)
        if metric_plan.previous_oid:
            columns.add(metric_plan.previous_oid)
        for lookup in metric_plan.lookups:
            columns.update(oid for oid in (lookup.oid, lookup.previous_oid) if oid)
    return sorted(columns)


def _pdus(plan: ModulePlan, rng: random.Random) -> list[tuple[tuple[int, ...], Value]]:
    rows = [tuple(rng.randrange(1, 300) for _ in range(rng.choice([1, 1, 1, 2, 4]))) for _ in range(12)]
    rows += [(0,), (1,), (2,)]  # scalars and small enum-like indexes
    pdus = [(column + row, _value(rng)) for column in _columns(plan) for row in rows if rng.random() < 0.6]
    pdus += [rng.choice(pdus) for _ in range(len(pdus) // 20)] if pdus else []  # repeated OIDs: the later wins
    return pdus


def _rendered(out: render.Families) -> Any:
    families = {name: (family.documentation, family.type, family.series)
                for name, family in out.rendered.families.items()}
    return families, out.rendered.errors, out.rendered.debug


def _both_ways(monkeypatch: pytest.MonkeyPatch, work: list[tuple[ModulePlan, list[Any]]], wrap: bool) -> list[Any]:
    results = []
    for renderer in (_renderfast.render_pdu, render._render_pdu_python):
        monkeypatch.setattr(render, "render_pdu", renderer)
        out = render.Families()
        for plan, pdus in work:
            render.render_module(plan, pdus, out, wrap)
        results.append(_rendered(out))
    return results


@pytest.fixture(scope="module")
def plans(shared_snmp_yml: Path) -> dict[str, ModulePlan]:
    config: Config = load_config([str(shared_snmp_yml)])
    return {name: compile_module(module.snmp) for name, module in config.modules.items()  # type: ignore[attr-defined]
            if module.prober == "snmp"}


def test_the_c_path_serves_most_metrics_of_the_real_snmp_yml(plans: dict[str, ModulePlan]) -> None:
    served = [metric_plan.fast is not None for plan in plans.values() for metric_plan in plan.metrics.values()]
    assert len(plans) == 53 and sum(served) > 0.8 * len(served)
    assert render.pdu_renderer() == "c"


def test_every_module_renders_the_same_both_ways(plans: dict[str, ModulePlan],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(20261207)
    samples = 0
    for name, plan in plans.items():
        for wrap in (True, False):
            work = [(plan, _pdus(plan, rng))]
            ours, reference = _both_ways(monkeypatch, work, wrap)
            assert ours == reference, name
            samples += sum(len(series) for _, _, series in reference[0].values())
    assert samples > 20_000  # the comparison covered real work


def test_modules_rendered_into_one_response_clash_the_same_both_ways(plans: dict[str, ModulePlan],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    names = sorted(plans)
    errors = 0
    for _ in range(60):
        first, second = rng.sample(names, 2)
        work = [(plans[first], _pdus(plans[first], rng)), (plans[second], _pdus(plans[second], rng))]
        work.append(work[0])  # the same PDUs again: every series a duplicate
        ours, reference = _both_ways(monkeypatch, work, True)
        assert ours == reference, (first, second)
        errors += len(reference[1])
    assert errors > 0  # duplicates and clashes were exercised


@pytest.mark.parametrize("number", [0.0, -0.0, 1.0, -1.0, 999_999.0, 1e6, -1e6, 1_234_000.0, 3_668_918_509.0,
                                    2.0**53 - 1, -(2.0**53 - 1), 10.0**15, 123_456_789_012_345.0])
def test_whole_numbers_are_spelled_as_go_float(number: float) -> None:
    assert _renderfast.spell_whole(number) == go_float(number)


def test_random_whole_numbers_are_spelled_as_go_float() -> None:
    rng = random.Random(3)
    for _ in range(20_000):
        number = float(rng.randrange(-(2**53) + 1, 2**53) // 10 ** rng.randrange(16))
        assert _renderfast.spell_whole(number) == go_float(number)
    for refused in (0.5, 2.0**53, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="whole number"):
            _renderfast.spell_whole(refused)

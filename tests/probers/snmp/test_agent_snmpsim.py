"""The SNMP prober against snmpsim serving recorded data (cisco_16_switch and the type fixture)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from probe_exporter.config import Config, load_config
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.pipeline import run_probe
from tests.probers.snmp import recordings

# The reference spec's §4.4 expected output (verified against snmp_exporter), sample lines only.
TYPES_EXPECTED = r"""tBits{tBits="a"} 1
tBits{tBits="b"} 1
tBits{tBits="beyond"} 0
tBits{tBits="c"} 0
tBits{tBits="p"} 1
tC32max 4.294967295e+09
tC64max 9.007199254740991e+15
tC64wrap 5
tDate 1.711802097e+09
tDateTz 1.711781217e+09
tDisp{tDisp="hello \"q\" \\ back"} 1
tGauge32max 4.294967295e+09
tGaugeFromStr 0
tGaugeNeg -5
tIdxDisp{name="foo"} 12
tIdxEnum{kind="5"} 16
tIdxEnum{kind="foo"} 15
tIdxImplied{iname="bar"} 19
tIdxInet{addr="10.0.0.1"} 11
tIdxLookup{rowIndex="1",rowMissing="",rowName="row-one"} 17
tIdxLookup{rowIndex="2",rowMissing="",rowName=""} 18
tIdxMac{mac="00:16:C7:02:6E:83"} 14
tIdxOctFixed{blob="0x0102"} 13
tInfo_info{tInfo="7"} 1
tIp{tIp="10.1.2.3"} 1
tOct{tOct="0x00FF10"} 1
tOctEmpty{tOctEmpty=""} 1
tOidVal{tOidVal="1.3.6.1.4.1.9"} 1
tPhys8{tPhys8="00:16:C7:02:6E:83"} 1
tRegexStatus 1
tRegexTemp 42.5
tState{tState="down"} 1
tState{tState="testing"} 0
tState{tState="up"} 0
tTicks 12345
"""

TYPES_HELP = [
    "# HELP tBits bits (Bits)",
    '# HELP tDisp display with \\\\ and "quotes"',
    "# HELP tInfo_info info (EnumAsInfo)",
    "# HELP tRegexStatus regex (regex extracted)",
    "# HELP tState stateset (EnumAsStateSet)",
    "# TYPE tC32max counter",
    "# TYPE tC64wrap counter",
]


@pytest.fixture(scope="module")
def config(shared_snmp_yml: Path, test_auths_yml: Path) -> Config:
    return load_config([str(shared_snmp_yml), str(test_auths_yml)])


async def _probe(config: Config, module: str, target: str, auth: str, timeout: float = 10.0) -> tuple[bool, str, str]:
    outcome = await run_probe(module, config.modules[module], target, timeout, {"auth": auth}, config)
    return outcome.success, render_text(collect_sorted([outcome.metrics])).decode(), outcome.log.text()


def _samples(text: str, skip_prefixes: tuple[str, ...] = ("snmp_scrape_", "probe_")) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")
            and not line.startswith(skip_prefixes)]


async def test_type_coverage_fixture_renders_exactly_as_snmp_exporter(config: Config, snmpsim_agent: str) -> None:
    success, text, log = await _probe(config, "types", snmpsim_agent, "types")
    assert success, log
    assert _samples(text) == TYPES_EXPECTED.splitlines()
    for line in TYPES_HELP:
        assert line in text.splitlines()
    assert 'snmp_scrape_packets_sent{module="types"} 2' in text
    assert 'snmp_scrape_pdus_returned{module="types"} 29' in text
    assert 'snmp_scrape_packets_retried{module="types"} 0' in text


async def test_if_mib_on_cisco_recording(config: Config, snmpsim_agent: str) -> None:
    success, text, log = await _probe(config, "if_mib", snmpsim_agent, "cisco")
    assert success, log
    samples = _samples(text)
    assert len(samples) == 1914  # + the 5 snmp_scrape_* samples = 1,919 as in the reference capture
    assert len([line for line in text.splitlines() if line.startswith("# TYPE ") and "snmp_scrape" not in line
                and "probe_" not in line]) == 35  # + 5 snmp_scrape_* = 40 families
    for line in [
        'ifHCInOctets{ifAlias="",ifDescr="Vlan1",ifIndex="1",ifName="Vl1"} 3.9857997e+07',
        'ifPhysAddress{ifAlias="",ifDescr="FastEthernet3/0/1",ifIndex="11001",ifName="Fa3/0/1",'
        'ifPhysAddress="00:16:C7:02:6E:83"} 1',
        "ifNumber 59",
        "# TYPE ifInOctets counter",
        'snmp_scrape_pdus_returned{module="if_mib"} 2091',
        'snmp_scrape_packets_sent{module="if_mib"} 84',
        'probe_snmp_module_success{module="if_mib"} 1',
    ]:
        assert line in text.splitlines(), line
    # The empty OCTET STRING of a stack port is zero-padded, the hex-recorded ifDescr is text.
    assert any('ifDescr="StackSub-St3-1"' in s and 'ifPhysAddress="00:00:00:00:00:00"' in s for s in samples)
    assert "ifInOctets_total" not in text


async def test_v1_uses_getnext_and_gets_no_counter64(config: Config, snmpsim_agent: str) -> None:
    success, text, log = await _probe(config, "if_octets", snmpsim_agent, "cisco_v1")
    assert success, log
    assert len([line for line in text.splitlines() if line.startswith("ifInOctets{")]) == 57
    assert "ifHCInOctets{" not in text  # snmpsim serves no Counter64 over v1, as the reference saw
    # One varbind per GETNEXT: 57 rows and the step out of the column; then the HC column's first
    # answer is already outside it, so a GET of the root follows (gosnmp's scalar fallback).
    assert 'snmp_scrape_packets_sent{module="if_octets"} 60' in text
    success, text, log = await _probe(config, "if_octets", snmpsim_agent, "cisco")
    assert success, log
    assert len([line for line in text.splitlines() if line.startswith("ifHCInOctets{")]) == 55
    assert 'snmp_scrape_packets_sent{module="if_octets"} 6' in text


async def test_system_module_scalars(config: Config, snmpsim_agent: str) -> None:
    success, text, log = await _probe(config, "system", snmpsim_agent, "cisco")
    assert success, log
    lines = text.splitlines()
    assert 'sysObjectID{sysObjectID="1.3.6.1.4.1.9.1.516"} 1' in lines
    assert "sysUpTime 6.97202257e+08" in lines
    assert 'sysName{sysName="Profiler3750"} 1' in lines


async def test_wrong_community_times_out_within_deadline_and_logs_no_secret(config: Config,
                                                                            snmpsim_agent: str) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    success, text, log = await _probe(config, "system", snmpsim_agent, "wrong", timeout=1.5)
    elapsed = loop.time() - start
    assert not success
    assert elapsed < 2.0
    assert "probe_success 0" in text
    assert 'probe_snmp_module_success{module="system"} 0' in text
    assert "timeout" in log
    assert "not-the-community" not in log and "not-the-community" not in text


async def test_unknown_auth_is_a_bad_request(config: Config, snmpsim_agent: str) -> None:
    from probe_exporter.probers.base import BadRequest

    with pytest.raises(BadRequest, match="Unknown auth 'nope'"):
        await run_probe("system", config.modules["system"], snmpsim_agent, 5, {"auth": "nope"}, config)


def _column(column: int, tmp_path: Path) -> dict[str, str]:
    """ifTable column values of the recording, by ifIndex."""
    prefix = f"1.3.6.1.2.1.2.2.1.{column}."
    rows = {}
    for line in recordings.write_cisco_16_switch(tmp_path).read_text(encoding="latin-1").splitlines():
        oid, _, value = line.split("|", 2)
        if oid.startswith(prefix):
            rows[oid[len(prefix):]] = value
    return rows


async def test_dynamic_filter_gets_only_the_allowed_rows(config: Config, snmpsim_agent: str, tmp_path: Path) -> None:
    admin, in_octets = _column(7, tmp_path), _column(10, tmp_path)
    expected = sorted(i for i, status in admin.items() if "1" in status and i in in_octets)
    assert 0 < len(expected) < len(in_octets)
    success, text, log = await _probe(config, "filtered", snmpsim_agent, "cisco")
    assert success, log
    found = sorted(line.split('"')[1] for line in text.splitlines() if line.startswith("ifInOctets{"))
    assert found == expected
    # The filter column is walked (59 rows: 3 GETBULK), then the allowed rows are read with GET
    # in chunks of max_repetitions (25); the ifInOctets walk itself is dropped.
    allowed = len([i for i, status in admin.items() if "1" in status])
    gets = (allowed + 24) // 25
    assert f'snmp_scrape_packets_sent{{module="filtered"}} {3 + gets}' in text.splitlines()


async def test_two_filters_on_one_target_intersect(config: Config, snmpsim_agent: str, tmp_path: Path) -> None:
    admin, oper, in_octets = _column(7, tmp_path), _column(8, tmp_path), _column(10, tmp_path)
    expected = sorted(i for i in in_octets if "1" in admin.get(i, "") and oper.get(i) == "1")
    assert expected
    success, text, log = await _probe(config, "filtered_and", snmpsim_agent, "cisco")
    assert success, log
    found = sorted(line.split('"')[1] for line in text.splitlines() if line.startswith("ifInOctets{"))
    assert found == expected

"""Rendering rules of snmp_exporter's collector, as table tests on plain values (no agent needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import re2
import yaml

from probe_exporter.config.snmp import SnmpModule
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.probers.snmp import datetimes
from probe_exporter.probers.snmp.plan import compile_module
from probe_exporter.probers.snmp.render import Families, expand_template, parse_go_float, render_module
from probe_exporter.probers.snmp.strings import index_as_string, valid_utf8, value_as_string
from probe_exporter.probers.snmp.values import COUNTER64, FLOAT, INTEGER, IPADDRESS, OCTETS, OID, UNSIGNED
from tests.probers.snmp.differential import pdu_renderer  # noqa: F401  (autouse: both render paths)


@pytest.mark.parametrize(("arcs", "kind", "fixed", "implied", "expected", "rest"), [
    ((5, 7), "gauge", 0, False, "5", (7,)),
    ((4294967295,), "Integer32", 0, False, "4294967295", ()),
    ((0, 22, 199, 2, 110, 131), "PhysAddress48", 0, False, "00:16:C7:02:6E:83", ()),
    ((1, 2), "PhysAddress48", 0, False, "01:02:00:00:00:00", ()),
    ((3, 102, 111, 111, 9), "OctetString", 0, False, "0x666F6F", (9,)),
    ((0,), "OctetString", 0, False, "", ()),
    ((1, 2, 3), "OctetString", 2, False, "0x0102", (3,)),
    ((98, 97, 114), "DisplayString", 0, True, "bar", ()),
    ((2, 0xFF, 65), "DisplayString", 0, False, "\ufffdA", ()),
    ((10, 0, 0, 1), "InetAddressIPv4", 0, False, "10.0.0.1", ()),
    (tuple(range(16)), "InetAddressIPv6", 0, False, "0001:0203:0405:0607:0809:0A0B:0C0D:0E0F", ()),
    ((1, 4, 192, 168, 1, 2), "InetAddress", 0, False, "192.168.1.2", ()),
    ((2, 16, *range(16)), "InetAddress", 0, False, "0001:0203:0405:0607:0809:0A0B:0C0D:0E0F", ()),
    ((3, 5, 192, 168, 1, 2, 5), "InetAddress", 0, False, "0x0305C0A8010205", ()),
    ((1, 192, 168, 1, 2), "InetAddressMissingSize", 0, False, "192.168.1.2", ()),
    ((3, 192, 168), "InetAddressMissingSize", 0, False, "0x03C0A8", ()),
    ((3, 6, 0, 22, 199, 2, 110, 131), "LldpPortId", 0, False, "00:16:C7:02:6E:83", ()),
    ((1,), "EnumAsInfo", 0, False, "foo", ()),
    ((7,), "EnumAsInfo", 0, False, "7", ()),
])
def test_index_as_string(arcs: tuple[int, ...], kind: str, fixed: int, implied: bool, expected: str,
                         rest: tuple[int, ...]) -> None:
    text, _, remaining = index_as_string(arcs, kind, fixed, implied, {1: "foo"})
    assert text == expected
    assert remaining == rest


@pytest.mark.parametrize(("value", "kind", "expected"), [
    ((OCTETS, b"\x00\xff\x10"), "OctetString", "0x00FF10"),
    ((OCTETS, b""), "OctetString", ""),
    ((OCTETS, b"MS TCP Loopback interface\x00"), "DisplayString", "MS TCP Loopback interface\x00"),
    ((OCTETS, b"VPN_\xca\xb4\xcc"), "DisplayString", "VPN_ʴ\ufffd"),
    ((OCTETS, b"\x00\x16\xc7\x02\x6e\x83\xaa\xbb"), "PhysAddress48", "00:16:C7:02:6E:83"),
    ((OCTETS, b"\x0a\x01"), "InetAddressIPv4", "10.1.0.0"),
    ((OCTETS, b"\x05"), "gauge", "5"),
    ((OCTETS, b"\xc0\x01"), "Bits", "0xC001"),
    ((IPADDRESS, "10.1.2.3"), "InetAddressIPv4", "10.1.2.3"),
    ((OID, "1.3.6.1.4.1.9"), "OctetString", "1.3.6.1.4.1.9"),
    ((INTEGER, -5), "DisplayString", "-5"),
    ((UNSIGNED, 4294967295), "gauge", "4294967295"),
    ((COUNTER64, 18446744073709551615), "counter", "18446744073709551615"),
    ((FLOAT, 0.46000000834465027), "Float", "0.46"),
    ((FLOAT, 1e-7), "Float", "0.0000001"),
])
def test_value_as_string(value: tuple[int, object], kind: str, expected: str) -> None:
    assert value_as_string(value, kind) == expected  # type: ignore[arg-type]


def test_invalid_utf8_runs_become_one_replacement_each() -> None:
    assert valid_utf8(b"a\xff\xfeb\xffc") == "a\ufffdb\ufffdc"
    assert valid_utf8("ok €".encode()) == "ok €"


@pytest.mark.parametrize(("raw", "expected"), [
    (bytes.fromhex("07e8031e0c22380a"), 1711802097),  # deciseconds 10 normalise to +1 s
    (bytes.fromhex("07e8031e0c22380a2b0530"), 1711781217),
    (bytes.fromhex("07DA0A19160F0B002B0400"), 1288030511),  # hrSystemDate of the linux recording
    (bytes.fromhex("07e80d0100000000"), 1735689600),  # month 13 -> January next year
])
def test_date_and_time(raw: bytes, expected: int) -> None:
    assert datetimes.date_and_time(raw) == expected


@pytest.mark.parametrize("raw", [bytes(7), bytes(9), bytes.fromhex("07e8031e0c22380a200000")])
def test_date_and_time_invalid(raw: bytes) -> None:
    with pytest.raises(ValueError):
        datetimes.date_and_time(raw)


@pytest.mark.parametrize(("text", "pattern", "expected"), [
    ("Mar 30 2024", "%b %d %Y", 1711756800),
    ("Sat Mar 30 12:34:56 2024", "%a %b %d %H:%M:%S %Y", 1711802096),
    ("2024-03-30T12:34:56+0100", "%Y-%m-%dT%H:%M:%S%z", 1711798496),
])
def test_parse_pattern(text: str, pattern: str, expected: int) -> None:
    assert datetimes.parse_pattern(text, pattern) == expected


@pytest.mark.parametrize(("text", "pattern"), [("Mar 30 2024 x", "%b %d %Y"), ("Mar-30 2024", "%b %d %Y")])
def test_parse_pattern_rejects_trailing_and_mismatched_input(text: str, pattern: str) -> None:
    with pytest.raises(ValueError):
        datetimes.parse_pattern(text, pattern)


def test_ntp_timestamp_drops_the_fraction() -> None:
    assert datetimes.ntp_timestamp((2208988800 + 10).to_bytes(4, "big") + b"\xff\xff\xff\xff") == 10
    with pytest.raises(ValueError):
        datetimes.ntp_timestamp(b"\x00" * 7)


@pytest.mark.parametrize(("template", "expected"), [
    ("$1", "42"), ("${1}.5", "42.5"), ("$1x", ""), ("$$1", "$1"), ("$name", "42"), ("${name}", "42"),
    ("$", "$"), ("a$-b", "a$-b"), ("$9", ""),
])
def test_expand_template_as_go(template: str, expected: str) -> None:
    match = re2.compile(r"^(?:(?P<name>\d+))$").search("42")
    assert expand_template(template, match) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("42.5", 42.5), ("1e3", 1000.0), ("-0x1p-2", -0.25), ("+Inf", float("inf")),
])
def test_parse_go_float(text: str, expected: float) -> None:
    assert parse_go_float(text) == expected


@pytest.mark.parametrize("text", ["", " 1", "1 ", "1_000", "abc", "1e400"])
def test_parse_go_float_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_float(text)


def _render(module: dict, pdus: list, wrap: bool = True) -> tuple[list[str], list[str]]:
    plan = compile_module(SnmpModule.model_validate(module))
    out = Families()
    render_module(plan, pdus, out, wrap)
    text = render_text(collect_sorted([_Collector(out)])).decode()
    return [line for line in text.splitlines() if not line.startswith("#")], out.rendered.errors


class _Collector:
    def __init__(self, families: Families) -> None:
        self.families = families

    def collect(self):  # type: ignore[no-untyped-def]
        return iter(self.families.rendered.families.values())


BASE = (1, 3, 6, 1, 4, 1, 1)


def test_chained_lookups_and_dropped_source_index() -> None:
    module = {"metrics": [{
        "name": "temp", "oid": "1.3.6.1.4.1.1.1", "type": "gauge",
        "indexes": [{"labelname": "sensor", "type": "gauge"}],
        "lookups": [
            {"labels": ["sensor"], "labelname": "entity", "oid": "1.3.6.1.4.1.1.2", "type": "gauge"},
            {"labels": ["entity"], "labelname": "entityName", "oid": "1.3.6.1.4.1.1.3", "type": "DisplayString"},
            {"labels": [], "labelname": "sensor"},
        ]}]}
    pdus = [((*BASE, 1, 7), (INTEGER, 30)), ((*BASE, 2, 7), (INTEGER, 4)), ((*BASE, 3, 4), (OCTETS, b"cpu"))]
    lines, errors = _render(module, pdus)
    assert errors == []
    assert lines == ['temp{entity="4",entityName="cpu"} 30']


def test_enum_lookup_scale_offset_and_combined_type() -> None:
    module = {"metrics": [
        {"name": "v", "oid": "1.3.6.1.4.1.1.1", "type": "gauge", "scale": 0.1, "offset": 1,
         "indexes": [{"labelname": "i", "type": "gauge"}],
         "lookups": [{"labels": ["i"], "labelname": "kind", "oid": "1.3.6.1.4.1.1.2", "type": "EnumAsInfo",
                      "enum_values": {3: "ioMemory"}}]},
        {"name": "addr", "oid": "1.3.6.1.4.1.1.5", "type": "InetAddress",
         "indexes": [{"labelname": "i", "type": "gauge"}]},
    ]}
    pdus = [((*BASE, 1, 1), (INTEGER, 100)), ((*BASE, 2, 1), (INTEGER, 3)),
            ((*BASE, 4, 1), (INTEGER, 1)), ((*BASE, 5, 1), (OCTETS, b"\x0a\x00\x00\x01")),
            ((*BASE, 5, 2), (OCTETS, b"\x0a\x00\x00\x02"))]
    lines, errors = _render(module, pdus)
    assert errors == []
    assert 'v{i="1",kind="ioMemory"} 11' in lines
    assert 'addr{addr="10.0.0.1",i="1"} 1' in lines  # sub-type 1 from the column before: IPv4
    # No sub-type PDU: the type stays InetAddress, so the bytes are read as an index would be
    # (type 10 unknown, "length" 0): the hex of the first 2 bytes, as upstream's code does.
    assert 'addr{addr="0x0A00",i="2"} 1' in lines


def test_counter64_wrapping_can_be_turned_off() -> None:
    module = {"metrics": [{"name": "c", "oid": "1.3.6.1.4.1.1.1", "type": "counter"}]}
    pdus = [((*BASE, 1, 0), (COUNTER64, 2**64 - 1))]
    assert _render(module, pdus)[0] == ["c 9.007199254740991e+15"]
    assert _render(module, pdus, wrap=False)[0] == ["c 1.8446744073709552e+19"]


def test_enum_as_info_skipped_when_an_index_has_its_name() -> None:
    module = {"metrics": [{"name": "s", "oid": "1.3.6.1.4.1.1.1", "type": "EnumAsInfo",
                           "indexes": [{"labelname": "s", "type": "gauge"}], "enum_values": {1: "up"}}]}
    assert _render(module, [((*BASE, 1, 1), (INTEGER, 1))])[0] == []


def test_enum_as_state_set_adds_an_unknown_current_value() -> None:
    module = {"metrics": [{"name": "s", "oid": "1.3.6.1.4.1.1.1", "type": "EnumAsStateSet",
                           "enum_values": {1: "up", 2: "down"}}]}
    lines, _ = _render(module, [((*BASE, 1, 0), (INTEGER, 9))])
    assert lines == ['s{s="9"} 1', 's{s="down"} 0', 's{s="up"} 0']


def test_same_name_with_other_help_is_an_error() -> None:
    module = {"metrics": [{"name": "x", "oid": "1.3.6.1.4.1.1.1", "type": "gauge", "help": "a"},
                          {"name": "x", "oid": "1.3.6.1.4.1.1.2", "type": "gauge", "help": "b"}]}
    _, errors = _render(module, [((*BASE, 1, 0), (INTEGER, 1)), ((*BASE, 2, 0), (INTEGER, 2))])
    assert len(errors) == 1 and "has help" in errors[0]


def test_shortest_metric_oid_claims_the_pdu() -> None:
    module = {"metrics": [{"name": "outer", "oid": "1.3.6.1.4.1.1", "type": "gauge",
                           "indexes": [{"labelname": "i", "type": "gauge"}]},
                          {"name": "inner", "oid": "1.3.6.1.4.1.1.1", "type": "gauge"}]}
    lines, _ = _render(module, [((*BASE, 1, 0), (INTEGER, 1))])
    assert lines == ['outer{i="1"} 1']


@pytest.mark.parametrize(("hint", "data", "expected"), [
    ("1d.1d.1d.1d", bytes([192, 168, 1, 1]), "192.168.1.1"),
    ("1d.", bytes([10, 0, 0, 1]), "10.0.0.1"),  # the last spec repeats; no trailing separator
    ("1x:", bytes([0, 26, 43, 60, 77, 94]), "00:1A:2B:3C:4D:5E"),
    ("255a", b"Hello", "Hello"),
    ("255t", "héllo".encode(), "héllo"),
    ("2d", bytes([1, 0]), "256"),
    ("1o", bytes([8]), "10"),
    ("2x-1d", bytes([0xAB, 0xCD, 7, 8]), "ABCD-78"),
    # '*': the first byte is a repeat count (2: "1.2", then the terminator); the spec then repeats,
    # so byte 3 is the next count and 4 the only byte left.
    ("*1d./", bytes([2, 1, 2, 3, 4]), "1.2/4"),
    ("255a", b"bad\xff\xfeend", "bad\ufffdend"),
])
def test_display_hint(hint: str, data: bytes, expected: str) -> None:
    assert value_as_string((OCTETS, data), "OctetString", hint) == expected


@pytest.mark.parametrize(("hint", "data"), [("1q", b"\x01"), ("x", b"\x01"), ("9d", bytes(9)), ("0d", b"\x01")])
def test_unusable_display_hint_falls_back_to_hex(hint: str, data: bytes) -> None:
    assert value_as_string((OCTETS, data), "OctetString", hint) == "0x" + data.hex().upper()


def test_display_hint_only_applies_to_octet_strings() -> None:
    assert value_as_string((OCTETS, b"ab"), "DisplayString", "1x:") == "ab"


def test_one_lookup_match_agrees_with_the_shortest_prefix_rule(shared_snmp_yml: Path) -> None:
    # Every metric OID of the generated snmp.yml, with one-arc and longer suffixes: the shortcut
    # for unshadowed metrics claims each PDU for the same metric as the length-by-length walk.
    generated = yaml.load(shared_snmp_yml.read_text(), Loader=yaml.CSafeLoader)["modules"]
    checked = 0
    for module in generated.values():
        plan = compile_module(SnmpModule.model_validate(module))
        for oid in plan.metrics:
            for suffix in ((0,), (7,), (7, 3), ()):
                pdu_oid = oid + suffix
                if not pdu_oid[:-1]:
                    continue
                assert plan.match(pdu_oid) == plan.match_by_length(pdu_oid), pdu_oid
                checked += 1
    assert checked > 10_000


def _table_module() -> dict:
    return {"metrics": [
        {"name": "runName", "oid": "1.3.6.1.4.1.1.2", "type": "DisplayString",
         "indexes": [{"labelname": "runIndex", "type": "gauge"}]},
        {"name": "runMemory", "oid": "1.3.6.1.4.1.1.3", "type": "gauge",
         "indexes": [{"labelname": "runIndex", "type": "gauge"}]},
        {"name": "withLookup", "oid": "1.3.6.1.4.1.1.4", "type": "gauge",
         "indexes": [{"labelname": "runIndex", "type": "gauge"}],
         "lookups": [{"labels": ["runIndex"], "labelname": "runName", "oid": "1.3.6.1.4.1.1.2",
                      "type": "DisplayString"}]}]}


def _render_plan(plan: object, pdus: list) -> list[str]:
    out = Families()
    render_module(plan, pdus, out)  # type: ignore[arg-type]
    return [line for line in render_text(collect_sorted([_Collector(out)])).decode().splitlines()
            if not line.startswith("#")]


def test_index_only_labels_are_kept_across_scrapes_and_lookups_are_not() -> None:
    plan = compile_module(SnmpModule.model_validate(_table_module()))
    by_name = {p.metric.name: p for p in plan.metrics.values()}
    kept = by_name["runName"].index_labels
    assert kept is not None and kept is by_name["runMemory"].index_labels  # one recipe, one store
    assert by_name["withLookup"].index_labels is None
    first = [((*BASE, 2, 7), (OCTETS, b"init")), ((*BASE, 3, 7), (INTEGER, 10)), ((*BASE, 4, 7), (INTEGER, 1))]
    assert _render_plan(plan, first) == ['runMemory{runIndex="7"} 10', 'runName{runIndex="7",runName="init"} 1',
                                         'withLookup{runIndex="7",runName="init"} 1']
    assert set(kept) == {(7,)}
    row = kept[(7,)]
    # The next scrape: the process has another name; the kept row serves, the lookup is made anew.
    second = [((*BASE, 2, 7), (OCTETS, b"sshd")), ((*BASE, 3, 7), (INTEGER, 11)), ((*BASE, 4, 7), (INTEGER, 1))]
    assert _render_plan(plan, second) == ['runMemory{runIndex="7"} 11', 'runName{runIndex="7",runName="sshd"} 1',
                                          'withLookup{runIndex="7",runName="sshd"} 1']
    assert kept[(7,)] is row


def test_kept_index_labels_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from probe_exporter.probers.snmp import render

    monkeypatch.setattr(render, "MAX_INDEX_LABELS", 10)
    plan = compile_module(SnmpModule.model_validate(_table_module()))
    kept = next(p for p in plan.metrics.values() if p.metric.name == "runMemory").index_labels
    assert kept is not None
    for scrape in range(3):
        pdus = [((*BASE, 3, scrape * 100 + row), (INTEGER, row)) for row in range(25)]
        lines = _render_plan(plan, pdus)
        assert len(lines) == 25 and f'runMemory{{runIndex="{scrape * 100 + 24}"}} 24' in lines
        assert len(kept) <= 10

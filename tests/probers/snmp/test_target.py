"""snmp_exporter's target syntax: `[transport://]host[:port]`."""

from __future__ import annotations

import pytest

from probe_exporter.probers.snmp.engine import SnmpError
from probe_exporter.probers.snmp.target import Target, parse_target


@pytest.mark.parametrize(("text", "expected"), [
    ("localhost", Target("udp", "localhost", 161)),
    ("localhost:1161", Target("udp", "localhost", 1161)),
    ("udp://localhost", Target("udp", "localhost", 161)),
    ("udp://localhost:1161", Target("udp", "localhost", 1161)),
    ("udp6://localhost:1161", Target("udp6", "localhost", 1161)),
    ("192.168.1.1", Target("udp", "192.168.1.1", 161)),
    ("192.168.1.1:0", Target("udp", "192.168.1.1", 0)),
    ("::1", Target("udp", "::1", 161)),
    ("[::1]", Target("udp", "::1", 161)),
    ("[::1]:1161", Target("udp", "::1", 1161)),
    ("udp://[::1]:1161", Target("udp", "::1", 1161)),
    ("fe80::1", Target("udp", "fe80::1", 161)),
    ("[localhost]", Target("udp", "localhost", 161)),
    ("[192.168.1.1]", Target("udp", "192.168.1.1", 161)),
])
def test_parse_target(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("localhost:abc", "error converting port number"),
    ("localhost:65536", "out of range"),
    ("localhost:-1", "error converting port number"),
    ("tcp://localhost", "unsupported transport"),
])
def test_parse_target_errors(text: str, message: str) -> None:
    with pytest.raises(SnmpError, match=message):
        parse_target(text)

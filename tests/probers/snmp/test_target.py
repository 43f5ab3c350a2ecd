"""snmp_exporter's target syntax: `[transport://]host[:port]`."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from probe_exporter.config import load_config
from probe_exporter.logs import ProbeLog
from probe_exporter.probers.snmp.engine import SnmpError
from probe_exporter.probers.snmp.scrape import scrape
from probe_exporter.probers.snmp.target import _FAMILIES, Target, _literal, parse_target, resolve


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
    # Go's SplitHostPort fails (too many colons): the whole text is the host, which will not resolve.
    ("[::1]:1161:5", Target("udp", "[::1]:1161:5", 161)),
    ("a:b:c", Target("udp", "a:b:c", 161)),
    ("tcp://127.0.0.1:1161", Target("tcp", "127.0.0.1", 1161)),
    ("tcp6://[::1]", Target("tcp6", "::1", 161)),
])
def test_parse_target(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("localhost:abc", "error converting port number"),
    ("localhost:65536", "out of range"),
    ("localhost:-1", "error converting port number"),
    ("sctp://localhost", "unsupported transport"),
])
def test_parse_target_errors(text: str, message: str) -> None:
    with pytest.raises(SnmpError, match=message):
        parse_target(text)


async def test_name_resolution_is_bounded_by_the_deadline(tmp_path: Path) -> None:
    path = tmp_path / "snmp.yml"
    path.write_text("auths:\n  public_v2: {}\nmodules:\n  m: {walk: [1.3.6.1.2.1.1]}\n")
    config = load_config([str(path)])
    log = ProbeLog(module="m", target="localhost")
    # A deadline already reached: the lookup is cut at its first wait, as a slow resolver would be.
    result = await scrape("localhost", [("m", config.modules["m"])], config, {}, asyncio.get_running_loop().time(),
                          log)
    assert not result.success
    assert result.modules[0].error == "error connecting to target localhost: timeout"
    assert "Error connecting to target" in log.text()


@pytest.mark.parametrize("text", ["127.0.0.1:1161", "udp4://10.1.2.3", "[::1]:1161", "udp6://[::ffff:1.2.3.4]:5",
                                  "[FE80::0001]:3", "udp://[2001:db8::1]"])
async def test_ip_literals_resolve_as_getaddrinfo_does(text: str) -> None:
    # Literals skip the resolver's thread; the address must be spelled as the kernel spells a source.
    target = parse_target(text)
    literal = _literal(target)
    assert literal is not None
    infos = await asyncio.get_running_loop().getaddrinfo(target.host, target.port, family=_FAMILIES[target.transport],
                                                         type=socket.SOCK_DGRAM)
    assert literal == await resolve(target)
    assert literal[1][:2] == infos[0][4][:2]

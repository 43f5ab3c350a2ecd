"""The shared target helpers in probers/net: the one host:port parser and the one IP-literal check."""

from __future__ import annotations

import pytest

from probe_exporter.probers.net.hostport import HostPortError, ip_literal, split_host_port


@pytest.mark.parametrize(("target", "expected"), [
    ("example.com:80", ("example.com", "80")),
    ("[::1]:9115", ("::1", "9115")),
    ("host:", ("host", "")),
    ("[fe80::1%eth0]:53", ("fe80::1%eth0", "53")),
])
def test_split_host_port_as_go(target: str, expected: tuple[str, str]) -> None:
    assert split_host_port(target) == expected
    assert split_host_port(target, default_port="1") == expected


@pytest.mark.parametrize(("target", "message"), [
    ("example.com", "missing port in address"),
    ("::1", "too many colons in address"),
    ("[::1]", "missing port in address"),
    ("[::1", "missing ']' in address"),
    ("[::1]x", "unexpected ']' in address"),
])
def test_split_host_port_errors_are_gos(target: str, message: str) -> None:
    with pytest.raises(HostPortError, match=message):
        split_host_port(target)


@pytest.mark.parametrize(("target", "expected"), [
    ("example.com", ("example.com", "161")),
    ("::1", ("::1", "161")),
    ("fe80::1%eth0", ("fe80::1%eth0", "161")),
    ("[2001:db8::1]", ("2001:db8::1", "161")),
    ("10.0.0.1:1161", ("10.0.0.1", "1161")),
])
def test_split_host_port_with_a_default_port(target: str, expected: tuple[str, str]) -> None:
    assert split_host_port(target, default_port="161") == expected


@pytest.mark.parametrize("target", ["a:b:c", "[::1]:80:81", "[a]b]"])
def test_split_host_port_with_a_default_still_refuses_garbage(target: str) -> None:
    with pytest.raises(HostPortError):
        split_host_port(target, default_port="80")


@pytest.mark.parametrize(("host", "version"), [
    ("192.0.2.1", 4), ("::1", 6), ("fe80::1%eth0", 6), ("example.com", None), ("[::1]", None), ("", None),
    ("1.2.3", None),
])
def test_ip_literal(host: str, version: int | None) -> None:
    address = ip_literal(host)
    assert (address.version if address is not None else None) == version

"""A prober block written with no value (`http:`) means its defaults, as with Go's yaml; blocks with a
wrong value stay refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe_exporter.config import load_config

from .refusal import assert_text_refused

BLOCKS = ["http", "tcp", "icmp", "dns", "grpc", "unix", "websocket"]


def load_module(tmp_path: Path, body: str) -> dict[str, object]:
    path = tmp_path / "c.yml"
    path.write_text("modules:\n  m:\n" + body)
    return load_config([str(path)]).modules["m"].model_dump()


@pytest.mark.parametrize("block", BLOCKS)
def test_empty_block_is_the_same_as_no_block(tmp_path: Path, block: str) -> None:
    empty = load_module(tmp_path, f"    prober: {block}\n    {block}:\n")
    tilde = load_module(tmp_path, f"    prober: {block}\n    {block}: ~\n")
    omitted = load_module(tmp_path, f"    prober: {block}\n")
    assert empty == omitted == tilde


def test_defaults_of_empty_blocks_are_blackboxs(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("modules:\n" + "".join(f"  {b}:\n    prober: {b}\n    {b}:\n" for b in BLOCKS))
    modules = load_config([str(path)]).modules
    assert modules["http"].http.ip_protocol_fallback is True
    assert modules["http"].http.method == "GET"
    assert modules["http"].http.follow_redirects is True
    assert modules["icmp"].icmp.ttl == 64
    assert modules["dns"].dns.recursion_desired is True  # and not validated: no query_name needed
    assert modules["websocket"].websocket.ip_protocol_fallback is True
    # No DefaultGRPCProbe in blackbox's DefaultModule, and an empty block does not run its UnmarshalYAML.
    assert modules["grpc"].grpc.ip_protocol_fallback is False


def test_empty_nested_blocks_are_defaults(tmp_path: Path) -> None:
    module = load_module(tmp_path, "    prober: http\n    http:\n      tls_config:\n      method: POST\n")
    assert module["http"]["method"] == "POST"  # type: ignore[index]
    assert module["http"]["tls_config"]["insecure_skip_verify"] is False  # type: ignore[index]
    dns = load_module(tmp_path, "    prober: dns\n    dns:\n      query_name: example.com\n"
                                "      validate_answer_rrs:\n")
    assert dns["dns"]["validate_answer_rrs"]["fail_if_matches_regexp"] == []  # type: ignore[index]


@pytest.mark.parametrize(("body", "line", "message"), [
    ("    prober: http\n    http: []\n", 4, "modules.m.http"),
    ("    prober: http\n    http: 5\n", 4, "modules.m.http"),
    ("    prober: http\n    http: ''\n", 4, "modules.m.http"),
    ("    prober: tcp\n    tcp:\n      unknown:\n", 5, "field unknown not found"),
    ("    prober:\n", 3, "prober"),
    ("    prober: dns\n    dns:\n      query_type: A\n", 4, "query name must be set for DNS module"),
    ("    prober: http\n    http:\n      fail_if_header_matches:\n        - header: X\n          regexp:\n", 6,
     "regexp must be set for HTTP header matchers"),
])
def test_wrong_block_values_stay_refused(tmp_path: Path, body: str, line: int, message: str) -> None:
    assert_text_refused(tmp_path, "modules:\n  m:\n" + body, line, message)

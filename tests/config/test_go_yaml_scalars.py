"""Go's yaml scalar rules: a string field gets the scalar as written (`on` stays "on"), bool fields
take YAML 1.1 booleans, number fields refuse them; errors keep their file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe_exporter.config import load_config
from probe_exporter.config.module import Module

from .refusal import assert_text_refused

# Every YAML 1.1 boolean spelling PyYAML resolves to a bool.
YAML11_BOOLEANS = ["on", "On", "ON", "off", "Off", "OFF", "yes", "Yes", "YES", "no", "No", "NO",
                   "true", "True", "TRUE", "false", "False", "FALSE"]


def load(tmp_path: Path, modules: str) -> dict[str, Module]:
    path = tmp_path / "c.yml"
    path.write_text("modules:\n" + modules)
    return load_config([str(path)]).modules


@pytest.mark.parametrize("word", YAML11_BOOLEANS)
def test_booleans_stay_text_in_string_fields(tmp_path: Path, word: str) -> None:
    modules = load(tmp_path, f"  m:\n    prober: http\n    http:\n      method: {word}\n      headers:\n"
                             f"        X-Flag: {word}\n      basic_auth:\n        username: {word}\n"
                             f"        password: {word}\n      valid_http_versions: [{word}]\n")
    http = modules["m"].http
    assert http.headers == {"X-Flag": word}
    assert http.method == word
    assert http.valid_http_versions == [word]
    assert http.basic_auth is not None
    assert http.basic_auth.username == word
    assert http.basic_auth.password is not None and http.basic_auth.password.reveal() == word


def test_numbers_and_dates_stay_as_written_in_string_fields(tmp_path: Path) -> None:
    modules = load(tmp_path, "  m:\n    prober: http\n    http:\n      headers:\n        X-Version: 1.10\n"
                             "        X-Hex: 0x1F\n        X-Octal: 012\n        X-Date: 2001-12-14\n"
                             "        X-Exp: 1e3\n        X-Quoted: 'on'\n      fail_if_body_matches_regexp: [1.50]\n")
    http = modules["m"].http
    assert http.headers == {"X-Version": "1.10", "X-Hex": "0x1F", "X-Octal": "012", "X-Date": "2001-12-14",
                            "X-Exp": "1e3", "X-Quoted": "on"}
    assert http.fail_if_body_matches_regexp[0].pattern == "1.50"


def test_nested_string_containers_and_websocket_headers(tmp_path: Path) -> None:
    modules = load(tmp_path, "  g:\n    prober: grpc\n    grpc:\n      metadata:\n        flag: [on, 1.0]\n"
                             "  w:\n    prober: websocket\n    websocket:\n      headers:\n"
                             "        X-Flag: {values: [off, yes]}\n      query_response:\n"
                             "        - expect: 'ready'\n          send: on\n")
    assert modules["g"].grpc.metadata == {"flag": ["on", "1.0"]}
    assert modules["w"].websocket.headers["X-Flag"].values == ["off", "yes"]
    assert modules["w"].websocket.query_response[0].send == b"on"


@pytest.mark.parametrize(("word", "expected"), [("on", True), ("yes", True), ("off", False), ("no", False),
                                                ("true", True), ("False", False)])
def test_bool_fields_take_yaml11_booleans(tmp_path: Path, word: str, expected: bool) -> None:
    modules = load(tmp_path, f"  m:\n    prober: http\n    http:\n      fail_if_ssl: {word}\n")
    assert modules["m"].http.fail_if_ssl is expected


@pytest.mark.parametrize(("body", "line", "message"), [
    ("  m:\n    prober: icmp\n    icmp:\n      ttl: on\n", 5, "modules.m.icmp.ttl"),
    ("  m:\n    prober: http\n    timeout: yes\n", 4, 'time: invalid duration "yes"'),
    ("  m:\n    prober: http\n    http:\n      headers:\n        X-Flag: on\n      bogus: off\n", 7,
     "field bogus not found"),
])
def test_errors_keep_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    assert_text_refused(tmp_path, "modules:\n" + body, line, message)

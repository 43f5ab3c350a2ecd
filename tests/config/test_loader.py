from __future__ import annotations

from pathlib import Path

import pytest

from probe_exporter.config import ConfigError, load_config
from probe_exporter.config.render import config_as_yaml
from tests.support.paths import DEBIAN_BLACKBOX_EXAMPLES, REPO, require_file


def write(tmp_path: Path, text: str, name: str = "c.yml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_debian_stock_blackbox_yml_loads_unmodified() -> None:
    path = require_file(Path("/etc/prometheus/blackbox.yml"))
    config = load_config([str(path)])
    assert {"http_2xx", "pop3s_banner", "irc_banner", "icmp_ttl5", "grpc_plain"} <= set(config.modules)
    pop3 = config.modules["pop3s_banner"].tcp.query_response[0].expect
    assert pop3 is not None
    # Go RE2 reads "^+OK" as (^)+OK: it matches OK at line start, not "+OK POP3 ready".
    assert pop3.search("OK") and not pop3.search("+OK POP3 ready")
    assert config.modules["icmp_ttl5"].timeout == 5.0
    assert config.modules["icmp_ttl5"].icmp.ttl == 5


@pytest.mark.parametrize("name", ["blackbox.yml", "example.yml"])
def test_upstream_example_files_load_unmodified(name: str) -> None:
    path = require_file(DEBIAN_BLACKBOX_EXAMPLES / name)
    config = load_config([str(path)])
    assert config.modules


def test_binary_send_is_raw_bytes(tmp_path: Path) -> None:
    # upstream example.yml's PostgreSQL SSLRequest module
    text = ("modules:\n  postgres_ssl:\n    prober: tcp\n    tcp:\n      query_response:\n"
            "        - send: !!binary AAAACATSFi8=\n          expect_bytes: S\n        - starttls: true\n")
    config = load_config([write(tmp_path, text)])
    steps = config.modules["postgres_ssl"].tcp.query_response
    assert steps[0].send == b"\x00\x00\x00\x08\x04\xd2\x16/"
    assert steps[0].expect_bytes == b"S" and steps[1].starttls


def test_shipped_modules_load() -> None:
    config = load_config([str(REPO / "modules" / "*.yml")])
    assert "http_2xx" in config.modules


def test_defaults_match_blackbox() -> None:
    config = load_config([])  # nothing: no modules
    assert config.modules == {}


def test_defaults_of_a_bare_module(tmp_path: Path) -> None:
    config = load_config([write(tmp_path, "modules:\n  m:\n    prober: http\n")])
    module = config.modules["m"]
    assert module.http.ip_protocol_fallback is True
    assert module.http.preferred_ip_protocol == ""
    assert module.http.follow_redirects is True
    assert module.http.method == "GET"
    assert module.icmp.ttl == 64
    assert module.dns.recursion_desired is True and module.dns.query_type == "ANY"
    assert module.grpc.ip_protocol_fallback is False  # no grpc: block, as upstream


@pytest.mark.parametrize(("text", "line", "message"), [
    ("modules:\n  m:\n    prober: http\n    http:\n      invalid_extra_field: 1\n", 5,
     "modules.m.http.invalid_extra_field: field invalid_extra_field not found"),
    ("modules:\n  m:\n    prober: invalid\n", 3, "prober 'invalid' is not valid"),
    ("modules:\n  m:\n    prober: dns\n    dns:\n      query_type: A\n", 4, "query name must be set for DNS module"),
    ("modules:\n  m:\n    prober: dns\n    dns:\n      query_name: x\n      query_class: XX\n", 4,
     "query class 'XX' is not valid"),
    ("modules:\n  m:\n    prober: dns\n    dns:\n      query_name: x\n      query_type: XX\n", 4,
     "query type 'XX' is not valid"),
    ("modules:\n  m:\n    prober: http\n    http:\n      fail_if_header_matches:\n        - regexp: a\n", 6,
     "header name must be set for HTTP header matchers"),
    ("modules:\n  m:\n    prober: http\n    http:\n      fail_if_header_matches:\n        - header: a\n", 6,
     "regexp must be set for HTTP header matchers"),
    ("modules:\n  m:\n    prober: http\n    http:\n      fail_if_body_matches_regexp: [':[']\n", 5,
     '"Could not compile regular expression" regexp=":["'),
    ("modules:\n  m:\n    prober: http\n    http:\n      compression: gzip\n      headers:\n"
     "        Accept-Encoding: deflate\n", 4, 'invalid configuration "Accept-Encoding: deflate", "compression: gzip"'),
    ("modules:\n  m:\n    prober: http\n    http:\n      enable_http3: true\n", 4,
     "when enable_http3 is true, enable_http2 must be set to false"),
    ("modules:\n  m:\n    prober: http\n    http:\n      enable_http3: true\n      enable_http2: false\n"
     "      valid_http_versions: [HTTP/1.1]\n", 4, "only HTTP/3.0 is allowed when enable_http3 is true"),
    ("modules:\n  m:\n    prober: icmp\n    icmp:\n      ttl: -1\n", 5, '"ttl" cannot be negative'),
    ("modules:\n  m:\n    prober: icmp\n    icmp:\n      ttl: 256\n", 5, '"ttl" cannot exceed 255'),
    ("modules:\n  m:\n    prober: http\n    http:\n      body: a\n      body_file: b\n", 4,
     "setting body and body_file both are not allowed"),
    ("modules:\n  m:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: a\n"
     "          expect_bytes: b\n", 6, "expect and expect_bytes are mutually exclusive"),
    ("modules:\n  m:\n    prober: http\n    http:\n      bearer_token: a\n      bearer_token_file: b\n", 4,
     "at most one of bearer_token & bearer_token_file must be configured"),
    ("modules:\n  m:\n    prober: http\n    timeout: 1d\n", 4, 'time: invalid duration "1d"'),
    ("modules:\n  m:\n    prober: http\n    timeout: 5\n", 4, 'time: invalid duration "5"'),
    ("modules:\n  m:\n    prober: http\n  m:\n    prober: tcp\n", 4, 'mapping key "m" already defined'),
    ("modules:\n  m:\n    prober: http\n   bad indent: [\n", 4, ""),
    ("bogus: 1\n", 1, "field bogus not found"),
])
def test_bad_configs_name_file_line_and_reason(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config([path])
    error = str(caught.value)
    assert error.startswith(f"error parsing config file: {path}:{line}: "), error
    assert message in error
    assert "\n" not in error


def test_duplicate_module_across_files_names_both(tmp_path: Path) -> None:
    first = write(tmp_path, "modules:\n  m:\n    prober: http\n", "a.yml")
    second = write(tmp_path, "modules:\n  m:\n    prober: tcp\n", "b.yml")
    with pytest.raises(ConfigError, match=f"already defined in {first}") as caught:
        load_config([str(tmp_path / "*.yml")])
    assert second in str(caught.value)


def test_missing_file_and_empty_glob_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_config([str(tmp_path / "missing.yml")])
    with pytest.raises(ConfigError, match="no file matches"):
        load_config([str(tmp_path / "*.yml")])


def test_merge_keys_and_anchors(tmp_path: Path) -> None:
    text = ("modules:\n  base: &base\n    prober: http\n    timeout: 5s\n"
            "  derived:\n    <<: *base\n    timeout: 7s\n")
    config = load_config([write(tmp_path, text)])
    assert config.modules["derived"].timeout == 7.0 and config.modules["derived"].prober == "http"


def test_config_page_hides_every_secret(tmp_path: Path) -> None:
    text = """modules:
  basic:
    prober: http
    http:
      basic_auth: {username: user, password: s3cret-basic}
      tls_config: {key: s3cret-key-pem, cert: some-cert}
      http_headers:
        X-Token: {secrets: [s3cret-header]}
      proxy_url: http://proxy:3128
      proxy_connect_header:
        Proxy-Authorization: [s3cret-proxy]
  bearer:
    prober: http
    http:
      bearer_token: s3cret-bearer
  authz:
    prober: http
    http:
      authorization: {credentials: s3cret-authz}
  oauth:
    prober: http
    http:
      oauth2: {client_id: id, client_secret: s3cret-oauth, token_url: http://t/}
"""
    page = config_as_yaml(load_config([write(tmp_path, text)]))
    assert "s3cret" not in page
    assert page.count("<secret>") >= 7
    assert "username: user" in page

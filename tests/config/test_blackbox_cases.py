"""Our own configs for every case of blackbox_exporter's config tests (TestLoadConfig,
TestLoadBadConfigs, TestHideConfigSecrets, TestWebsocketProbeUnmarshal): the accepted one loads with
the same meaning, and each refused one is refused with upstream's reason, naming file and line.

The files in blackbox_cases/ are written for this project; each mirrors one upstream test data file
(named beside it below) with other names and values.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from probe_exporter.config import load_config
from probe_exporter.config.render import config_as_yaml

from .refusal import assert_refused

CASES = Path(__file__).parent / "blackbox_cases"
REGEX_ERROR = '"Could not compile regular expression" regexp='

# our file -> (upstream file it mirrors, line of the error, upstream's reason)
REFUSED = {
    "bad-unknown-field.yml": ("blackbox-bad.yml", 11, "field not_a_dns_field not found"),
    "bad-bearer-token-twice.yml": ("blackbox-bad2.yml", 4,
                                   "at most one of bearer_token & bearer_token_file must be configured"),
    "bad-prober.yml": ("invalid-prober.yml", 3, "prober 'gopher' is not valid"),
    "bad-dns-no-query-name.yml": ("invalid-dns-module.yml", 4, "query name must be set for DNS module"),
    "bad-dns-class.yml": ("invalid-dns-class.yml", 4, "query class 'Q' is not valid"),
    "bad-dns-type.yml": ("invalid-dns-type.yml", 4, "query type 'Q' is not valid"),
    "bad-http-header-match-no-regexp.yml": ("invalid-http-header-match.yml", 6,
                                            "regexp must be set for HTTP header matchers"),
    "bad-http-body-match-regexp.yml": ("invalid-http-body-match-regexp.yml", 6, REGEX_ERROR + '"error: (unclosed"'),
    "bad-http-body-not-match-regexp.yml": ("invalid-http-body-not-match-regexp.yml", 6, REGEX_ERROR + '"[z-a]"'),
    "bad-http-header-match-regexp.yml": ("invalid-http-header-match-regexp.yml", 7, REGEX_ERROR + '"*nginx"'),
    "bad-http-compression-mismatch.yml": ("invalid-http-compression-mismatch.yml", 4,
                                          'invalid configuration "Accept-Encoding: gzip", "compression: br"'),
    "bad-http-compression-mismatch-mixed-case.yml": (
        "invalid-http-compression-mismatch-special-case.yml", 4,
        'invalid configuration "aCCEPT-eNCODING: br", "compression: deflate"'),
    "bad-http-compression-rejects-everything.yml": (
        "invalid-http-request-compression-reject-all-encodings.yml", 4,
        'invalid configuration "Accept-Encoding: *;q=0", "compression: deflate"'),
    "bad-http3-with-http2-and-old-versions.yml": (
        "invalid-http-http3-http2.yml", 4,
        "HTTP/3 and HTTP/2.0/1.1 cannot be used together - only HTTP/3.0 is allowed when enable_http3 is true"),
    "bad-http3-without-disabling-http2.yml": ("invalid-no-versions-http3-enabled.yml", 4,
                                              "when enable_http3 is true, enable_http2 must be set to false"),
    "bad-http3-with-old-versions.yml": (
        "invalid-http-http3-http2-version.yml", 4,
        "HTTP/3 and HTTP/2.0/1.1 cannot be used together - only HTTP/3.0 is allowed when enable_http3 is true"),
    "bad-http3-with-http2-enabled.yml": ("invalid-http-http3-http2-enabled.yml", 4,
                                         "when enable_http3 is true, enable_http2 must be set to false"),
    "bad-icmp-ttl-negative.yml": ("invalid-icmp-ttl.yml", 5, '"ttl" cannot be negative'),
    "bad-icmp-ttl-too-large.yml": ("invalid-icmp-ttl-overflow.yml", 5, '"ttl" cannot exceed 255'),
    "bad-tcp-query-response-regexp.yml": ("invalid-tcp-query-response-regexp.yml", 6, REGEX_ERROR + '"^* OK (["'),
    "bad-unix-query-response-regexp.yml": ("invalid-unix-query-response-regexp.yml", 7,
                                           REGEX_ERROR + '"(?P<broken"'),
    "bad-websocket-query-response-regexp.yml": ("invalid-websocket-query-response-regexp.yml", 6,
                                                REGEX_ERROR + '"hello ["'),
    "bad-http-body-and-body-file.yml": ("invalid-http-body-config.yml", 4,
                                        "setting body and body_file both are not allowed"),
}


def test_every_case_file_is_checked() -> None:
    assert {path.name for path in CASES.glob("*.yml")} == {"good.yml", *REFUSED}
    # One of ours for each of upstream's 23 refused files.
    assert len({upstream for upstream, _, _ in REFUSED.values()}) == 23


def test_good_config_loads_with_blackboxs_meaning() -> None:
    config = load_config([str(CASES / "good.yml")])
    modules = config.modules
    assert len(modules) == 12
    assert modules["web_defaults"].http.ip_protocol_fallback is True  # the empty `http:` block
    assert modules["web_defaults"].http.method == "GET"
    post = modules["web_form_post"].http
    assert post.method == "POST" and post.body_size_limit == 2 * 1024 * 1024
    assert post.basic_auth is not None and post.basic_auth.username == "prober"
    assert modules["port_open"].tcp.ip_protocol_fallback is True
    greeting = modules["imaps_greeting"].tcp
    assert greeting.tls and greeting.query_response[0].expect is not None
    # RE2 reads "^+OK" as (^)+OK, as Go does: it matches "OK" at a line start.
    assert greeting.query_response[0].expect.search("OK") and not greeting.query_response[0].expect.search("+OK")
    assert modules["submission_starttls"].tcp.query_response[5].starttls
    assert modules["chat_ping_pong"].tcp.query_response[2].send == b"PONG ${1}"
    assert modules["ping_v4"].icmp.preferred_ip_protocol == "ip4" and modules["ping_v4"].icmp.ttl == 64
    dns = modules["resolver_check"].dns
    assert dns.ip_protocol_fallback is False and dns.validate_answer_rrs.fail_if_matches_regexp == ["unexpected"]
    assert modules["cors_origin"].http.fail_if_header_not_matches[0].header == "Access-Control-Allow-Origin"
    grpc = modules["health_rpc"].grpc
    assert grpc.metadata == {"tenant": ["blue", "green"], "authorization": ["Bearer grpc-token"]}
    assert grpc.ip_protocol_fallback is True  # a grpc: block gets DefaultGRPCProbe
    websocket = modules["socket_feed"].websocket
    assert websocket.http_config.tls_config.insecure_skip_verify
    assert websocket.http_config.basic_auth is not None and websocket.http_config.basic_auth.username == "feeduser"


def test_good_config_page_hides_its_secrets() -> None:
    page = config_as_yaml(load_config([str(CASES / "good.yml")]))
    assert "hunter2-secret" not in page and "feed-secret" not in page
    assert "username: prober" in page


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_like_blackbox(name: str) -> None:
    _upstream, line, reason = REFUSED[name]
    assert_refused(CASES / name, line, reason)

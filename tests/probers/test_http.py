"""blackbox_exporter's prober/http_test.go cases, ported to real local servers."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import brotli
import pytest

from probe_exporter.config.loader import ConfigError
from tests.support.http_probe import http_module, probe
from tests.support.http_server import LocalServer, Req, Resp, Takeover, TLSMaterial, redirect

# Every case runs on both exchange paths (the lean HTTP/1.1 one and httpcore).
pytestmark = pytest.mark.usefixtures("http_path")

TEST_MSG = b"hello world" * 10
PHASES = {"connect", "processing", "resolve", "tls", "transfer"}


def _deflate(data: bytes) -> bytes:
    enc = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return enc.compress(data) + enc.flush()


# --- TestHTTPStatusCodes ---------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "valid", "ok"), [
    (200, [], True), (201, [], True), (299, [], True), (300, [], False), (404, [], False),
    (404, [200, 404], True), (200, [200, 404], True), (201, [200, 404], False), (404, [404], True),
    (200, [404], False),
])
async def test_status_codes(http_server: LocalServer, status: int, valid: list[int], ok: bool) -> None:
    url = http_server.route(lambda req: Resp(status=status))
    result = await probe(url, {"valid_status_codes": valid})
    assert result.success is ok
    assert result.value("probe_http_status_code") == status


# --- TestValidHTTPVersion --------------------------------------------------------------------------


@pytest.mark.parametrize(("versions", "ok"), [
    ([], True), (["HTTP/1.1"], True), (["HTTP/1.1", "HTTP/2.0"], True), (["HTTP/2.0"], False),
])
async def test_valid_http_versions(http_server: LocalServer, versions: list[str], ok: bool) -> None:
    url = http_server.route(lambda req: Resp())
    result = await probe(url, {"valid_http_versions": versions})
    assert result.success is ok
    assert result.value("probe_http_version") == 1.1


@pytest.mark.parametrize("versions", [["HTTP/1.1", "HTTP/2.0", "HTTP/3.0"], ["HTTP/3.0"]])
def test_http3_version_needs_enable_http3(versions: list[str]) -> None:
    with pytest.raises(ValueError, match="HTTP/3"):
        http_module({"valid_http_versions": versions})


async def test_http2_version_reported_as_go_proto(https_server: LocalServer) -> None:
    url = https_server.route(lambda req: Resp(body=b"ok"))
    result = await probe(url, {"tls_config": {"insecure_skip_verify": True}, "valid_http_versions": ["HTTP/2.0"]})
    assert result.success
    assert result.value("probe_http_version") == 2
    assert https_server.seen(url)[0].version == "HTTP/2"


async def test_http2_disabled_speaks_http11(https_server: LocalServer) -> None:
    url = https_server.route(lambda req: Resp(body=b"ok"))
    result = await probe(url, {"tls_config": {"insecure_skip_verify": True}, "enable_http2": False,
                               "valid_http_versions": ["HTTP/1.1"]})
    assert result.success
    assert result.value("probe_http_version") == 1.1


# --- TestContentLength -----------------------------------------------------------------------------


def _content_cases() -> list[tuple[str, Resp, int, int, bool]]:
    br, defl, gz = brotli.compress(TEST_MSG), _deflate(TEST_MSG), gzip.compress(TEST_MSG)
    return [
        ("identity", Resp(headers=[("Content-Encoding", "identity")], body=TEST_MSG), len(TEST_MSG), len(TEST_MSG),
         True),
        ("no content-encoding", Resp(body=TEST_MSG), len(TEST_MSG), len(TEST_MSG), True),
        ("unknown content-encoding", Resp(headers=[("Content-Encoding", "xxx")], body=b"x" * len(TEST_MSG)),
         len(TEST_MSG), len(TEST_MSG), True),
        ("404", Resp(status=404, body=b"not found"), 9, 9, False),
        ("brotli", Resp(headers=[("Content-Encoding", "br")], body=br), len(br), len(br), True),
        ("deflate", Resp(headers=[("Content-Encoding", "deflate")], body=defl), len(defl), len(defl), True),
        ("gzip", Resp(headers=[("Content-Encoding", "gzip")], body=gz), len(gz), len(gz), True),
    ]


@pytest.mark.parametrize(("name", "response", "length", "uncompressed", "ok"), _content_cases(),
                         ids=[c[0] for c in _content_cases()])
async def test_content_length(http_server: LocalServer, name: str, response: Resp, length: int, uncompressed: int,
                              ok: bool) -> None:
    url = http_server.route(lambda req: response)
    result = await probe(url)
    assert result.success is ok
    assert result.value("probe_http_content_length") == length
    assert result.value("probe_http_uncompressed_body_length") == uncompressed


async def test_unknown_content_length_is_minus_one(http_server: LocalServer) -> None:
    chunked = http_server.route(lambda req: Resp(body=TEST_MSG, chunked=True))
    until_close = http_server.route(lambda req: Resp(body=TEST_MSG, content_length=False))
    for url in (chunked, until_close):
        result = await probe(url)
        assert result.success
        assert result.value("probe_http_content_length") == -1
        assert result.value("probe_http_uncompressed_body_length") == len(TEST_MSG)


# --- TestHandlingOfCompressionSetting --------------------------------------------------------------


def _compression_cases() -> list[tuple[str, bytes, str, str, dict[str, str], int, bool]]:
    gz, br, defl = gzip.compress(TEST_MSG), brotli.compress(TEST_MSG), _deflate(TEST_MSG)
    n = len(TEST_MSG)
    return [
        ("gzip", gz, "gzip", "gzip", {}, n, True),
        ("brotli", br, "br", "br", {}, n, True),
        ("deflate", defl, "deflate", "deflate", {}, n, True),
        ("identity", TEST_MSG, "identity", "identity", {}, n, True),
        ("compression encoding mismatch", gz, "gzip", "deflate", {}, 0, False),
        ("accept gzip", gz, "gzip", "gzip", {"Accept-Encoding": "gzip"}, n, True),
        ("accept br, gzip", gz, "gzip", "gzip", {"Accept-Encoding": "br, gzip"}, n, True),
        ("accept anything", gz, "gzip", "gzip", {"Accept-Encoding": "*"}, n, True),
        ("compressed content without compression setting", gz, "gzip", "", {}, len(gz), True),
    ]


@pytest.mark.parametrize(("name", "payload", "encoding", "compression", "headers", "uncompressed", "ok"),
                         _compression_cases(), ids=[c[0] for c in _compression_cases()])
async def test_compression_setting(http_server: LocalServer, name: str, payload: bytes, encoding: str,
                                   compression: str, headers: dict[str, str], uncompressed: int, ok: bool) -> None:
    url = http_server.route(lambda req: Resp(headers=[("Content-Encoding", encoding)], body=payload))
    result = await probe(url, {"compression": compression, "headers": headers})
    assert result.success is ok
    assert result.value("probe_http_content_length") == len(payload)
    assert result.value("probe_http_uncompressed_body_length") == uncompressed
    if "Accept-Encoding" in headers:
        assert http_server.seen(url)[0].header("Accept-Encoding") == headers["Accept-Encoding"]


async def test_no_accept_encoding_sent_by_default(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp())
    assert (await probe(url, {"compression": "gzip"})).success is False  # an empty body is not gzip
    assert http_server.seen(url)[0].header("Accept-Encoding") is None


def test_compression_must_be_accepted_by_accept_encoding() -> None:
    with pytest.raises(ValueError, match='invalid configuration "Accept-Encoding: deflate", "compression: gzip"'):
        http_module({"compression": "gzip", "headers": {"Accept-Encoding": "deflate"}})


async def test_unknown_compression_fails_the_probe(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(body=TEST_MSG))
    result = await probe(url, {"compression": "zstd"})
    assert not result.success
    assert result.value("probe_http_uncompressed_body_length") == len(TEST_MSG)
    assert "Failed to get decompressor" in result.log


# --- TestMaxResponseLength -------------------------------------------------------------------------

MAX_LENGTH = 128


@pytest.mark.parametrize(("kind", "compression", "ok", "length", "uncompressed"), [
    ("short", "", True, MAX_LENGTH - 1, MAX_LENGTH - 1),
    ("long", "", False, MAX_LENGTH + 1, MAX_LENGTH),
    ("short-compressed", "gzip", True, len(gzip.compress(b"A" * (MAX_LENGTH - 1))), MAX_LENGTH - 1),
    ("long-compressed", "gzip", False, len(gzip.compress(b"A" * (MAX_LENGTH + 1))), MAX_LENGTH),
])
async def test_body_size_limit(http_server: LocalServer, kind: str, compression: str, ok: bool, length: int,
                               uncompressed: int) -> None:
    size = MAX_LENGTH - 1 if kind.startswith("short") else MAX_LENGTH + 1
    payload = b"A" * size
    headers = []
    if compression:
        payload = gzip.compress(payload)
        headers = [("Content-Encoding", "gzip")]
    url = http_server.route(lambda req: Resp(headers=headers, body=payload))
    result = await probe(url, {"body_size_limit": MAX_LENGTH, "compression": compression})
    assert result.success is ok
    assert result.value("probe_http_content_length") == length
    assert result.value("probe_http_uncompressed_body_length") == uncompressed


# --- redirects -------------------------------------------------------------------------------------


async def test_redirect_followed(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: redirect(req.prefix + "/noredirect") if req.path == "/" else Resp())
    result = await probe(url)
    assert result.success
    assert result.value("probe_http_redirects") == 1
    assert result.value("probe_http_status_code") == 200
    assert [r.path for r in http_server.seen(url)] == ["/", "/noredirect"]


async def test_redirect_not_followed(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: redirect(req.prefix + "/noredirect"))
    result = await probe(url, {"follow_redirects": False, "valid_status_codes": [302]})
    assert result.success
    # upstream counts the redirect it refused
    assert result.value("probe_http_redirects") == 1
    assert result.value("probe_http_status_code") == 302
    assert len(http_server.seen(url)) == 1


async def test_deprecated_no_follow_redirects(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: redirect(req.prefix + "/elsewhere"))
    result = await probe(url, {"no_follow_redirects": True})
    assert not result.success
    assert result.value("probe_http_status_code") == 302


async def test_redirection_limit(http_server: LocalServer) -> None:
    def handler(req: Req) -> Resp:
        if req.path == "/redirect-12":
            return Resp(status=429)
        if req.path.startswith("/redirect-"):
            return redirect(f"{req.prefix}/redirect-{int(req.path.rsplit('-', 1)[1]) + 1}")
        return redirect(req.prefix + "/redirect-1")

    url = http_server.route(handler)
    result = await probe(url)
    assert not result.success
    assert result.value("probe_http_redirects") == 11
    assert result.value("probe_http_status_code") == 302
    assert "/redirect-12" not in [r.path for r in http_server.seen(url)]
    assert len(http_server.seen(url)) == 11


async def test_post_redirected_with_302_becomes_get(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: redirect(req.prefix + "/done", 302) if req.path == "/" else Resp())
    result = await probe(url, {"method": "POST", "body": "payload"})
    assert result.success
    first, second = http_server.seen(url)
    assert (first.method, first.body) == ("POST", b"payload")
    assert (second.method, second.body, second.header("Content-Length")) == ("GET", b"", None)


async def test_307_keeps_method_and_body(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: redirect(req.prefix + "/done", 307) if req.path == "/" else Resp())
    assert (await probe(url, {"method": "POST", "body": "payload"})).success
    second = http_server.seen(url)[1]
    assert (second.method, second.body) == ("POST", b"payload")


# --- methods, bodies, auth -------------------------------------------------------------------------


async def test_post(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(status=200 if req.method == "POST" else 400))
    result = await probe(url, {"method": "POST"})
    assert result.success
    assert http_server.seen(url)[0].header("Content-Length") == "0"


async def test_basic_auth(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(
        status=200 if req.header("Authorization") == "Basic dXNlcm5hbWU6cGFzc3dvcmQ=" else 401))
    result = await probe(url, {"basic_auth": {"username": "username", "password": "password"}})
    assert result.success
    assert "password" not in result.log


async def test_basic_auth_password_file(http_server: LocalServer, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("password\n")
    url = http_server.route(lambda req: Resp(
        status=200 if req.header("Authorization") == "Basic dXNlcm5hbWU6cGFzc3dvcmQ=" else 401))
    assert (await probe(url, {"basic_auth": {"username": "username", "password_file": str(secret)}})).success


async def test_bearer_token(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(status=200 if req.header("Authorization") == "Bearer mysecret" else 401))
    assert (await probe(url, {"bearer_token": "mysecret"})).success
    assert (await probe(url, {"authorization": {"credentials": "mysecret"}})).success
    assert not (await probe(url, {"authorization": {"type": "Token", "credentials": "mysecret"}})).success


async def test_http_headers_values_and_secrets(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(status=200 if req.header_list("X-Api") == ["a", "s3cret"] else 400))
    assert (await probe(url, {"http_headers": {"X-Api": {"values": ["a"], "secrets": ["s3cret"]}}})).success


async def test_body_and_body_file(http_server: LocalServer, tmp_path: Path) -> None:
    body_file = tmp_path / "body.txt"
    body_file.write_text("Test Body")
    url = http_server.route(lambda req: Resp(status=200 if req.body == b"Test Body" else 400))
    assert (await probe(url, {"body": "Test Body"})).success
    assert (await probe(url, {"body_file": str(body_file)})).success
    inline, from_file = http_server.seen(url)
    assert inline.header("Content-Length") == "9"
    assert from_file.header("Transfer-Encoding") == "chunked"  # Go does not know a file's length


async def test_missing_body_file_fails(http_server: LocalServer, tmp_path: Path) -> None:
    url = http_server.route(lambda req: Resp())
    result = await probe(url, {"body_file": str(tmp_path / "absent")})
    assert not result.success
    assert http_server.seen(url) == []


def test_body_and_body_file_are_exclusive() -> None:
    with pytest.raises(ValueError, match="setting body and body_file both are not allowed"):
        http_module({"body": "a", "body_file": "/etc/hostname"})


# --- fail_if_ssl / fail_if_not_ssl -----------------------------------------------------------------


async def test_fail_if_not_ssl(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp())
    result = await probe(url, {"fail_if_not_ssl": True})
    assert not result.success
    assert result.value("probe_http_ssl") == 0
    assert "probe_ssl_earliest_cert_expiry" not in result.families


@pytest.mark.parametrize(("fail_if_not_ssl", "good_server", "ok", "message"), [
    (True, True, False, True), (False, True, True, False), (True, False, False, False),
])
async def test_fail_if_not_ssl_log_message(http_server: LocalServer, fail_if_not_ssl: bool, good_server: bool,
                                           ok: bool, message: bool) -> None:
    url = http_server.route(lambda req: Resp() if good_server else Takeover(lambda sock: sock.close()))
    result = await probe(url, {"fail_if_not_ssl": fail_if_not_ssl})
    assert result.success is ok
    assert ("Final request was not over SSL" in result.log) is message


async def test_fail_if_ssl(https_server: LocalServer) -> None:
    url = https_server.route(lambda req: Resp())
    result = await probe(url, {"fail_if_ssl": True, "tls_config": {"insecure_skip_verify": True}})
    assert not result.success
    assert result.value("probe_http_ssl") == 1
    assert "Final request was over SSL" in result.log


# --- CEL -------------------------------------------------------------------------------------------

CEL_MATCHES = [
    ("celExpression matches", '{"foo": {"bar": "baz"}}', "body.foo.bar == 'baz'", False),
    ("celExpression does not match", '{"foo": {"bar": "baz"}}', "body.foo.bar == 'qux'", True),
    ("celExpression does not match with empty body", "{}", "body.foo.bar == 'qux'", False),
    ("celExpression result not boolean", '{"foo": {"bar": "baz"}}', "body.foo.bar", False),
    ("body is not json", "hello world", "body.foo.bar == 'baz'", False),
    ("body is empty json object", "{}", "body.foo.bar == 'baz'", False),
    ("body is json string", '"foo"', "body == 'foo'", False),
    ("body is json list", '["foo","bar","baz"]', "body[2] == 'baz'", False),
    ("body is json boolean", "true", "body", False),
    ("body is empty", "", "body.foo.bar == 'baz'", False),
    ("body returns emoji", "🤠🤠🤠", "body.foo.bar == 'baz'", False),
    ("body returns json with emojis", '{"foo": {"bar": "🤠🤠🤠"}}', "body.foo.bar == '😿😿😿'", True),
]

CEL_NOT_MATCHES = [
    ("cel matches", '{"foo": {"bar": "baz"}}', "body.foo.bar == 'baz'", True),
    ("cel does not match", '{"foo": {"bar": "baz"}}', "body.foo.bar == 'qux'", False),
    ("cel does not match with empty body", "{}", "body.foo.bar == 'qux'", False),
    ("cel result not boolean", '{"foo": {"bar": "baz"}}', "body.foo.bar", False),
    ("body is not json", "hello world", "body.foo.bar == 'baz'", False),
    ("body is empty json object", "{}", "!has(body.foo)", True),
    ("body is json string", '"foo"', "body == 'foo'", True),
    ("body is json list", '["foo","bar","baz"]', "body[2] == 'baz'", True),
    ("body is json boolean", "true", "body", True),
    ("body is empty", "", "body.foo.bar == 'baz'", False),
    ("body returns emoji", "🤠🤠🤠", "body.foo.bar == 'baz'", False),
    ("body returns json with emojis", '{"foo": {"bar": "🤠🤠🤠"}}', "body.foo.bar == '🤠🤠🤠'", True),
]


@pytest.mark.parametrize(("name", "body", "expression", "ok"), CEL_MATCHES, ids=[c[0] for c in CEL_MATCHES])
async def test_fail_if_body_json_matches_cel(http_server: LocalServer, name: str, body: str, expression: str,
                                             ok: bool) -> None:
    raw = body.encode()
    url = http_server.route(lambda req: Resp(body=raw))
    result = await probe(url, {"fail_if_body_json_matches_cel": expression})
    assert result.success is ok
    assert result.value("probe_failed_due_to_cel") == (0 if ok else 1)
    assert result.value("probe_http_content_length") == len(raw)
    assert result.value("probe_http_uncompressed_body_length") == len(raw)


@pytest.mark.parametrize(("name", "body", "expression", "ok"), CEL_NOT_MATCHES, ids=[c[0] for c in CEL_NOT_MATCHES])
async def test_fail_if_body_json_not_matches_cel(http_server: LocalServer, name: str, body: str, expression: str,
                                                 ok: bool) -> None:
    url = http_server.route(lambda req: Resp(body=body.encode()))
    result = await probe(url, {"fail_if_body_json_not_matches_cel": expression})
    assert result.success is ok
    assert result.value("probe_failed_due_to_cel") == (0 if ok else 1)


async def test_cel_metric_only_with_cel_configured(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(body=b"{}"))
    assert "probe_failed_due_to_cel" not in (await probe(url)).families


@pytest.mark.parametrize(("expression", "error"), [("foo.bar", "undeclared reference to 'foo'"),
                                                   ("", "error compiling CEL program")])
def test_cel_rejected_at_load(expression: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        http_module({"fail_if_body_json_matches_cel": expression})


# --- body regexes ----------------------------------------------------------------------------------

BODY_MATCHES = [
    ("one regex, match", "Bad news: could not connect to database server", ["could not connect to database"], False),
    ("one regex, no match", "Download the latest version here", ["could not connect to database"], True),
    ("multiple regexes, match", "internal error", ["could not connect to database", "internal error"], False),
    ("multiple regexes, no match", "hello world", ["could not connect to database", "internal error"], True),
]


@pytest.mark.parametrize(("name", "body", "regexps", "ok"), BODY_MATCHES, ids=[c[0] for c in BODY_MATCHES])
async def test_fail_if_body_matches_regexp(http_server: LocalServer, name: str, body: str, regexps: list[str],
                                           ok: bool) -> None:
    url = http_server.route(lambda req: Resp(body=body.encode()))
    result = await probe(url, {"fail_if_body_matches_regexp": regexps})
    assert result.success is ok
    assert result.value("probe_failed_due_to_regex") == (0 if ok else 1)
    assert result.value("probe_http_content_length") == len(body)
    assert result.value("probe_http_uncompressed_body_length") == len(body)


@pytest.mark.parametrize(("body", "regexps", "ok"), [
    ("Bad news: could not connect to database server", ["Download the latest version here"], False),
    ("Download the latest version here", ["Download the latest version here"], True),
    ("Download the latest version here", ["Download the latest version here", "Copyright 2015"], False),
    ("Download the latest version here. Copyright 2015 Test Inc.",
     ["Download the latest version here", "Copyright 2015"], True),
])
async def test_fail_if_body_not_matches_regexp(http_server: LocalServer, body: str, regexps: list[str],
                                               ok: bool) -> None:
    url = http_server.route(lambda req: Resp(body=body.encode()))
    result = await probe(url, {"fail_if_body_not_matches_regexp": regexps})
    assert result.success is ok


async def test_body_regex_uses_re2_semantics(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(body=b"+OK POP3 ready\n"))
    # Go reads ^+OK as (^)+OK: it does not match "+OK" at the start.
    result = await probe(url, {"fail_if_body_not_matches_regexp": ["^+OK"]})
    assert not result.success


async def test_body_regex_on_decompressed_body(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(headers=[("Content-Encoding", "gzip")], body=gzip.compress(b"all good")))
    assert (await probe(url, {"compression": "gzip", "fail_if_body_not_matches_regexp": ["all good"]})).success
    assert not (await probe(url, {"fail_if_body_not_matches_regexp": ["all good"]})).success


# --- header regexes --------------------------------------------------------------------------------

COOKIE_OTHER = "zz=4; expires=Mon, 01-Jan-1990 00:00:00 GMT; Domain=www.example.com; Path=/"
COOKIE_MATCH = "gid=1; Expires=Tue, 19-Mar-2019 20:08:29 GMT; Domain=.example.com; Path=/"
DOMAIN_RE = ".*Domain=\\.example\\.com.*"

HEADER_MATCHES = [
    ("Content-Type", "text/javascript", False, ["text/javascript"], False),
    ("Content-Type", "text/javascript", False, ["application/octet-stream"], True),
    ("content-type", "text/javascript", False, ["application/octet-stream"], True),
    ("Content-Type", ".*", False, [""], False),
    ("Content-Type", ".*", False, [], False),
    ("Content-Type", ".*", True, [""], False),
    ("Content-Type", ".*", True, [], True),
    ("Set-Cookie", DOMAIN_RE, False, [COOKIE_MATCH], False),
    ("Set-Cookie", DOMAIN_RE, False, [COOKIE_OTHER, COOKIE_MATCH], False),
]

HEADER_NOT_MATCHES = [
    ("Content-Type", "text/javascript", False, ["text/javascript"], True),
    ("content-type", "text/javascript", False, ["text/javascript"], True),
    ("Content-Type", "text/javascript", False, ["application/octet-stream"], False),
    ("Content-Type", ".*", False, [""], True),
    ("Content-Type", ".*", False, [], False),
    ("Content-Type", ".*", True, [], True),
    ("Set-Cookie", DOMAIN_RE, False, [COOKIE_OTHER], False),
    ("Set-Cookie", DOMAIN_RE, False, [COOKIE_OTHER, COOKIE_MATCH], True),
]


@pytest.mark.parametrize(("header", "regexp", "allow_missing", "values", "ok"), HEADER_MATCHES)
async def test_fail_if_header_matches(http_server: LocalServer, header: str, regexp: str, allow_missing: bool,
                                      values: list[str], ok: bool) -> None:
    url = http_server.route(lambda req: Resp(headers=[(header, v) for v in values]))
    rule = {"header": header, "regexp": regexp, "allow_missing": allow_missing}
    result = await probe(url, {"fail_if_header_matches": [rule]})
    assert result.success is ok
    assert result.value("probe_failed_due_to_regex") == (0 if ok else 1)


@pytest.mark.parametrize(("header", "regexp", "allow_missing", "values", "ok"), HEADER_NOT_MATCHES)
async def test_fail_if_header_not_matches(http_server: LocalServer, header: str, regexp: str, allow_missing: bool,
                                          values: list[str], ok: bool) -> None:
    url = http_server.route(lambda req: Resp(headers=[(header, v) for v in values]))
    rule = {"header": header, "regexp": regexp, "allow_missing": allow_missing}
    result = await probe(url, {"fail_if_header_not_matches": [rule]})
    assert result.success is ok
    assert result.value("probe_failed_due_to_regex") == (0 if ok else 1)


@pytest.mark.parametrize(("rule", "error"), [({"regexp": "x"}, "header name must be set"),
                                             ({"header": "X"}, "regexp must be set")])
def test_header_matcher_validation(rule: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        http_module({"fail_if_header_matches": [rule]})


# --- TestHTTPHeaders -------------------------------------------------------------------------------


async def test_http_headers(http_server: LocalServer) -> None:
    headers = {"Host": "my-secret-vhost.com", "User-Agent": "unsuspicious-user", "accept-language": "en-US"}
    url = http_server.route(lambda req: Resp())
    assert (await probe(url, {"headers": headers})).success
    (seen,) = http_server.seen(url)
    assert seen.host == "my-secret-vhost.com"
    assert seen.header("User-Agent") == "unsuspicious-user"
    assert ("Accept-Language", "en-US") in seen.headers  # Go canonicalises the name


async def test_default_request_headers(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp())
    assert (await probe(url)).success
    (seen,) = http_server.seen(url)
    assert (seen.header("User-Agent") or "").startswith("Blackbox-Exporter/")
    assert seen.header("Connection") == "close"
    assert seen.header("Accept-Encoding") is None
    assert seen.host == url.split("/")[2]


async def test_hostname_parameter_sets_host(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp())
    assert (await probe(url, params={"hostname": "vhost.example"})).success
    assert http_server.seen(url)[0].host == "vhost.example"


async def test_hostname_parameter_conflicting_with_host_header_is_a_bad_request(http_server: LocalServer) -> None:
    from probe_exporter.probers.base import BadRequest

    url = http_server.route(lambda req: Resp())
    with pytest.raises(BadRequest, match=r"host header defined both in module configuration \(a\.example\) "
                                         r"and with URL-parameter 'hostname' \(b\.example\)"):
        await probe(url, {"headers": {"host": "a.example"}}, params={"hostname": "b.example"})
    assert http_server.seen(url) == []


# --- TLS -------------------------------------------------------------------------------------------


async def test_fail_if_self_signed_ca(https_server: LocalServer) -> None:
    url = https_server.route(lambda req: Resp())
    result = await probe(url)
    assert not result.success
    assert result.value("probe_http_ssl") == 0
    assert "probe_ssl_earliest_cert_expiry" not in result.families
    assert result.value("probe_http_status_code") == 0


async def test_succeed_if_self_signed_ca_with_insecure_skip_verify(https_server: LocalServer) -> None:
    url = https_server.route(lambda req: Resp())
    result = await probe(url, {"tls_config": {"insecure_skip_verify": True}})
    assert result.success
    assert result.value("probe_http_ssl") == 1
    # No verified chains: Go's zero time.
    assert result.value("probe_ssl_last_chain_expiry_timestamp_seconds") == -62135596800


async def test_tls_config_is_ignored_for_plain_http(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp())
    result = await probe(url, {"tls_config": {"insecure_skip_verify": False}})
    assert result.success
    assert result.value("probe_http_ssl") == 0


async def test_target_host_is_the_tls_server_name(https_h1_server: LocalServer, tls_material: TLSMaterial) -> None:
    url = https_h1_server.route(lambda req: Resp()).replace("127.0.0.1", "localhost")
    result = await probe(url, {"preferred_ip_protocol": "ip4", "tls_config": {"ca_file": str(tls_material.ca_file)}})
    assert result.success, result.log
    assert https_h1_server.seen(url)[0].server_name == "localhost"


async def test_host_header_is_the_tls_server_name(https_h1_server: LocalServer, tls_material: TLSMaterial) -> None:
    url = https_h1_server.route(lambda req: Resp())
    result = await probe(url, {"headers": {"Host": "localhost"}, "tls_config": {"ca_file": str(tls_material.ca_file)}})
    assert result.success, result.log
    assert https_h1_server.seen(url)[0].server_name == "localhost"
    # and tls_config.server_name wins over the Host header
    result = await probe(url, {"headers": {"Host": "localhost"},
                               "tls_config": {"ca_file": str(tls_material.ca_file), "server_name": "other.invalid"}})
    assert not result.success


async def test_redirect_to_tls_host_works(http_server: LocalServer, https_server: LocalServer,
                                          tls_material: TLSMaterial) -> None:
    tls_url = https_server.route(lambda req: Resp(body=b"secure")).replace("127.0.0.1", "localhost")
    url = http_server.route(lambda req: redirect(tls_url))
    result = await probe(url, {"tls_config": {"ca_file": str(tls_material.ca_file)}})
    assert result.success, result.log
    assert result.value("probe_http_ssl") == 1
    assert result.value("probe_http_redirects") == 1
    # a redirect to another host uses that host as SNI
    assert https_server.seen(tls_url)[0].server_name == "localhost"


async def test_http_phases(https_server: LocalServer) -> None:
    url = https_server.route(lambda req: Resp())
    result = await probe(url, {"tls_config": {"insecure_skip_verify": True}})
    assert result.success
    assert result.labels("probe_http_duration_seconds", "phase") == PHASES
    assert result.value("probe_http_duration_seconds", phase="tls") > 0
    assert result.value("probe_http_duration_seconds", phase="connect") > 0


async def test_http_phases_plain(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(body=b"x"))
    result = await probe(url)
    assert result.labels("probe_http_duration_seconds", "phase") == PHASES
    assert result.value("probe_http_duration_seconds", phase="tls") == 0
    assert result.value("probe_http_duration_seconds", phase="processing") > 0


# --- TestCookieJar ---------------------------------------------------------------------------------


async def test_cookie_jar_across_redirect(http_server: LocalServer) -> None:
    def handler(req: Req) -> Resp:
        if req.path == "/":
            return redirect(req.prefix + "/noredirect",
                            headers=[("Set-Cookie", "somecookie=cookie; Expires=Wed, 01 Jan 2098 00:00:00 GMT")])
        return Resp(status=200 if req.header("Cookie") == "somecookie=cookie" else 400)

    url = http_server.route(handler)
    result = await probe(url)
    assert result.success, result.log


async def test_cookie_jar_is_per_probe(http_server: LocalServer) -> None:
    def handler(req: Req) -> Resp:
        if req.path == "/":
            return redirect(req.prefix + "/second", headers=[("Set-Cookie", "c=1")])
        return Resp()

    url = http_server.route(handler)
    module = http_module()
    assert (await probe(url, module=module)).success
    assert (await probe(url, module=module)).success
    assert http_server.seen(url)[2].header("Cookie") is None


# --- TestSkipResolvePhase --------------------------------------------------------------------------


@pytest.mark.parametrize(("skip", "proxy_env", "proxy_config", "resolve"), [
    (True, False, False, True), (False, False, False, True), (False, False, True, True), (True, False, True, False),
    (False, True, False, True), (True, True, False, False),
])
async def test_skip_resolve_phase(http_server: LocalServer, refused_port: int, monkeypatch: pytest.MonkeyPatch,
                                  skip: bool, proxy_env: bool, proxy_config: bool, resolve: bool) -> None:
    url = http_server.route(lambda req: Resp(status=204))
    http: dict[str, object] = {"skip_resolve_phase_with_proxy": skip}
    if proxy_config:
        http["proxy_url"] = f"http://127.0.0.1:{refused_port}"
    if proxy_env:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{refused_port}")
        http["proxy_from_environment"] = True
    result = await probe(url, http)
    if not proxy_config and not proxy_env:
        assert result.success
    expected = PHASES if resolve else PHASES - {"resolve"}
    assert result.labels("probe_http_duration_seconds", "phase") == expected
    assert ("probe_ip_protocol" in result.families) is resolve


# --- TestHTTPParsingScheme -------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "tls", "ok"), [
    ("http://{}", False, True), ("https://{}", True, True), ("HTTP://{}", False, True), ("HtTpS://{}", True, True),
    ("{}", False, True), ("invalid://{}", False, False),
])
async def test_scheme_parsing(http_server: LocalServer, https_server: LocalServer, target: str, tls: bool,
                              ok: bool) -> None:
    server = https_server if tls else http_server
    url = server.route(lambda req: Resp())
    address_and_path = url.split("://", 1)[1]
    result = await probe(target.format(address_and_path), {"tls_config": {"insecure_skip_verify": True}})
    assert result.success is ok


# --- HTTP/3 (TestValidHTTPVersionsQUIC, TestHTTP3ProbeQUIC, TestHTTP3ProbeQUICMixedCaseHTTPScheme) -----

H3 = {"enable_http3": True, "enable_http2": False}


@pytest.mark.parametrize(("versions", "ok"), [
    (["HTTP/1.1", "HTTP/2.0", "HTTP/3.0"], False), (["HTTP/1.1", "HTTP/2.0"], False), (["HTTP/3.0"], True),
    (["HTTP/1.1"], False), (["HTTP/2.0"], False), ([], True),
])
async def test_valid_http_versions_quic(http3_server: str, versions: list[str], ok: bool) -> None:
    http = {**H3, "valid_http_versions": versions, "tls_config": {"insecure_skip_verify": True}}
    if not ok:  # refused at load, as upstream's config validation does
        with pytest.raises(ValueError, match="HTTP/3"):
            http_module(http)
        return
    result = await probe(http3_server + "/", http)
    assert result.success, result.log


async def test_http3_probe(http3_server: str, tls_material: TLSMaterial) -> None:
    result = await probe(http3_server + "/", {**H3, "valid_http_versions": ["HTTP/3.0"],
                                              "tls_config": {"ca_file": str(tls_material.ca_file)}})
    assert result.success, result.log
    assert result.value("probe_http_status_code") == 200
    assert result.value("probe_http_version") == 3
    assert result.value("probe_http_ssl") == 1
    assert result.only_labels("probe_tls_version_info") == {"version": "TLS 1.3"}
    assert result.only_labels("probe_tls_cipher_info")["cipher"].startswith("TLS_")
    assert result.value("probe_ssl_last_chain_expiry_timestamp_seconds") > 0
    assert result.value("probe_http_content_length") == 2


async def test_http3_probe_mixed_case_http_scheme(http3_server: str) -> None:
    target = "HtTp://" + http3_server.removeprefix("https://") + "/"
    result = await probe(target, {**H3, "valid_http_versions": ["HTTP/3.0"],
                                  "tls_config": {"insecure_skip_verify": True}})
    assert result.success, result.log


async def test_http3_redirect_and_untrusted_certificate(http3_server: str) -> None:
    result = await probe(http3_server + "/redirect", {**H3, "tls_config": {"insecure_skip_verify": True}})
    assert result.success, result.log
    assert result.value("probe_http_redirects") == 1
    assert not (await probe(http3_server + "/", H3)).success  # the test CA is not trusted


def test_http3_requires_http2_off() -> None:
    with pytest.raises((ValueError, ConfigError), match="when enable_http3 is true, enable_http2 must be set to false"):
        http_module({"enable_http3": True})


async def test_head_reports_the_declared_length(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(body=b"x" * 42))
    result = await probe(url, {"method": "HEAD"})
    assert result.success
    assert result.value("probe_http_content_length") == 42
    assert result.value("probe_http_uncompressed_body_length") == 0


async def test_no_content_has_zero_length(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(status=204))
    result = await probe(url)
    assert result.success
    assert result.value("probe_http_content_length") == 0


async def test_relative_redirect_keeps_the_host_header(http_server: LocalServer) -> None:
    """Go (issue 22233): a relative Location keeps the first request's custom Host."""
    url = http_server.route(lambda req: redirect(req.prefix + "/next") if req.path == "/" else Resp())
    assert (await probe(url, params={"hostname": "vhost.example"})).success
    first, second = http_server.seen(url)
    assert first.host == second.host == "vhost.example"
    assert second.header("Referer") == url  # Go sets Referer to the previous URL
    assert second.header("User-Agent") == first.header("User-Agent")


async def test_absolute_redirect_uses_the_new_host(http_server: LocalServer) -> None:
    def handler(req: Req) -> Resp:
        if req.path == "/":
            return redirect(f"http://localhost:{http_server.port}{req.prefix}/next")
        return Resp()

    url = http_server.route(handler)
    result = await probe(url, {"headers": {"Host": "vhost.example", "Authorization": "Token user-set"},
                               "bearer_token": "configured", "follow_redirects_with_credentials": True})
    assert result.success, result.log
    first, second = http_server.seen(url)
    assert first.host == "vhost.example"
    assert second.host == f"localhost:{http_server.port}"
    # With the opt-in, as Go's client: the user's Authorization header stays on the first host, configured
    # credentials go everywhere.
    assert first.header("Authorization") == "Token user-set"
    assert second.header("Authorization") == "Bearer configured"


async def test_cel_after_body_regexes_sees_an_empty_body(http_server: LocalServer) -> None:
    """Upstream reads the body once: when regexes are configured too, CEL gets nothing left and
    fails on JSON decoding. Kept for drop-in fidelity."""
    url = http_server.route(lambda req: Resp(body=b'{"ok": true}'))
    result = await probe(url, {"fail_if_body_not_matches_regexp": ["ok"],
                               "fail_if_body_json_not_matches_cel": "body.ok"})
    assert not result.success
    assert result.value("probe_failed_due_to_regex") == 0
    assert result.value("probe_failed_due_to_cel") == 1
    assert "Error unmarshalling HTTP body to JSON" in result.log
    assert (await probe(url, {"fail_if_body_json_not_matches_cel": "body.ok"})).success


async def test_body_size_limit_during_regex_read(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(body=b"z" * 500))
    result = await probe(url, {"body_size_limit": "100B", "fail_if_body_matches_regexp": ["nothing"]})
    assert not result.success
    assert result.value("probe_failed_due_to_regex") == 1
    assert result.value("probe_http_uncompressed_body_length") == 100


# config_test.go TestIsEncodingAcceptable
@pytest.mark.parametrize(("compression", "accept_encoding", "ok"), [
    ("", "gzip", True), ("gzip", "gzip", True), ("gzip", "gzip;q=1.0", True), ("gzip", "gzip, compress", True),
    ("gzip", "compress, gzip", True), ("br", "gzip, compress", False), ("br", "gzip, compress, *", True),
    ("br", "gzip, compress, *;q=0.1", True), ("br", "gzip, compress, br;q=0.0", False),
    ("br", "gzip, compress, *;q=0.0", False), ("br", "gzip;q=1.0, compress;q=0.5, br;q=0.1, *;q=0.0", True),
    ("br", "*;q=0.0, compress;q=0.5, br;q=0.1, gzip;q=1.0", True),
    ("br", " gzip;q=1.0, compress; q=0.5, br;q=0.1, *; q=0.0 ", True),
    ("gzip", "", True), ("gzip", "GZIP", False),
])
def test_is_encoding_acceptable(compression: str, accept_encoding: str, ok: bool) -> None:
    from probe_exporter.config.blackbox import accepts_encoding

    assert accepts_encoding(accept_encoding, compression) is ok


async def test_http10_response(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(body=b"old", version="HTTP/1.0", content_length=False))
    result = await probe(url, {"valid_http_versions": ["HTTP/1.0"]})
    assert result.success, result.log
    assert result.value("probe_http_version") == 1
    assert result.value("probe_http_content_length") == -1

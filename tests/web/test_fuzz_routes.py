"""No 5xx on input: Hypothesis drives every route of the app in-process (ASGI), with generated methods,
query parameters (repeated, unknown, empty, huge, control characters), headers and bodies.

Probes really run, but only against loopback: every generated target has the host 127.0.0.1 (closed
ports; the SQLite demo alias is named 127.0.0.1:5 too), nothing that a second URL decoding could turn into another host
(no `%`, `@`, `\\` or second `:` before the path), and each module's timeout is 1 s.

The only 5xx allowed are the Go exporters' own:
- blackbox_exporter's 500 for an X-Prometheus-Scrape-Timeout-Seconds that is not a number (/probe, /snmp);
- snmp_exporter's 500 "An error has occurred while serving metrics:" for a failed /snmp scrape, which
  is how it reports an unreachable device (Prometheus then sets `up` to 0).
"""

from __future__ import annotations

import base64
import errno
import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import bcrypt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe_exporter.exporter import Exporter, Settings
from probe_exporter.web.app import create_app
from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.web.fuzz_common import fuzz_modules, is_number

MAX_EXAMPLES = 200
TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
WEB_USER, WEB_PASSWORD = "fuzz", "fuzz-password"

# The SQLite alias is an IP literal: the other modules get the same target and must not resolve a name.
FUZZ_MODULES = fuzz_modules(sqlite_alias='"127.0.0.1:5"', extra="""\
  http_allowlisted:
    prober: http
    timeout: 1s
    allowed_targets: [127.0.0.1/32, "http://127.0.0.1:1/only/"]
    http: {headers: {Authorization: fuzz-never-shown}}
  tcp_no_timeout: {prober: tcp}  # the deadline comes from the scrape-timeout header alone
""")
MODULE_NAMES = ["http_2xx", "http_allowlisted", "tcp_connect", "tcp_no_timeout", "dns_udp", "sqlite_demo", "if_mib",
                "if_mib,if_mib", "sqlite_demo,if_mib", ""]


def _app(tmp_path: Path, web_config: str | None = None) -> FastAPI:
    config = tmp_path / "modules.yml"
    config.write_text(FUZZ_MODULES)
    web_file = ""
    if web_config is not None:
        web_file = str(tmp_path / "web.yml")
        Path(web_file).write_text(web_config)
    return create_app(Exporter(Settings(config_files=[str(config)], web_config_file=web_file)))


def _routes(app: FastAPI) -> list[tuple[str, list[str]]]:
    """(path, methods) of every route, the included routers' ones too."""
    found: dict[str, set[str]] = {}
    for route in app.routes:
        router = getattr(route, "original_router", None)
        for sub in router.routes if router is not None else [route]:
            path = getattr(sub, "path", "")
            found.setdefault(path, set()).update(getattr(sub, "methods", None) or {"GET"})
    return sorted((path, sorted(methods)) for path, methods in found.items())


ROUTES = _routes(create_app(Exporter(Settings(config_files=[str(REPO / "modules" / "http.yml")]))))


# Non-loopback addresses the app tried to reach during the current request: any is a failure.
outside_attempts: list[str] = []


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]").partition("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(scope="module", autouse=True)
def loopback_only() -> Iterator[None]:
    """The guard behind the strategies. A name lookup of anything but a loopback literal fails as a
    resolver error would (a DNS prober target is a name to look up, so that is input like any other;
    nothing is sent). A connect or datagram to a non-loopback address is refused and fails the test."""
    real = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex", "sendto")}
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        text = host.decode() if isinstance(host, bytes) else str(host)
        if not _is_loopback(text):
            raise socket.gaierror(socket.EAI_NONAME, "refused by the fuzz suite: not a loopback address")
        return real_getaddrinfo(host, *args, **kwargs)

    def guarded(name: str) -> Any:
        def call(sock: socket.socket, *args: Any) -> Any:
            address = args[-1]
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(str(address[0])):
                outside_attempts.append(f"{name} {address}")
                raise OSError(errno.ENETUNREACH, "refused by the fuzz suite: not a loopback address")
            return real[name](sock, *args)
        return call

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    for name in real:
        setattr(socket.socket, name, guarded(name))
    yield
    socket.getaddrinfo = real_getaddrinfo
    for name, method in real.items():
        setattr(socket.socket, name, method)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, loopback_only: None) -> Iterator[TestClient]:
    with TestClient(_app(tmp_path_factory.mktemp("fuzz"))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def guarded_client(tmp_path_factory: pytest.TempPathFactory, loopback_only: None) -> Iterator[TestClient]:
    """The same app behind --web.config.file basic auth: the Authorization header gets parsed."""
    hashed = bcrypt.hashpw(WEB_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    app = _app(tmp_path_factory.mktemp("fuzz-auth"), f"basic_auth_users:\n  {WEB_USER}: '{hashed}'\n")
    with TestClient(app) as test_client:
        yield test_client


# --- strategies -------------------------------------------------------------------------------------

# Any text a URL query can carry (surrogates cannot be encoded by any client).
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
closed_port = st.sampled_from([str(free_port()) for _ in range(3)] + ["1", "9", "0", "65535", "65536", "-1",
                                                                      "99999999999999999999", "", "http", " 1"])
port_text = st.one_of(closed_port, st.text(alphabet="0123456789 +-\t\x00\x7fab", max_size=8))
path_text = st.lists(st.one_of(st.text(st.characters(blacklist_categories=("Cs",),
                                                     blacklist_characters="@\\%:"), max_size=12),
                               st.sampled_from(["..", "%2e%2e", "%2F", "%00", "%0d%0a", "%25", "?", "&", "#", "/"])),
                     max_size=5).map("".join)
# Only these: the HTTP prober puts http:// before anything else, and `tcp://127.0.0.1` would then be host "tcp".
scheme = st.sampled_from(["", "http://", "https://", "HTTP://"])
loopback_target = st.one_of(
    st.builds(lambda s, p, rest: f"{s}127.0.0.1{':' + p if p is not None else ''}{'/' + rest if rest else ''}",
              scheme, st.none() | port_text, path_text),
    st.sampled_from(["127.0.0.1:5", "127.0.0.1", "http://127.0.0.1:1/only/", "http://127.0.0.1:1/only/../x",
                     "http://127.0.0.1:1/only/%2e%2e/x", "[127.0.0.1]:1", "127.0.0.1\x00:1", " 127.0.0.1:1"]),
)
digits = st.integers(min_value=0, max_value=10**6).map(str) | st.integers(1, 6000).map(lambda n: "9" * n)
KEYS_WITH_MEANING = ("module", "target", "debug", "id", "auth", "hostname", "params", "snmp_context",
                     "snmp_engineid")


def _value_for(key: str) -> st.SearchStrategy[str]:
    if key == "target":
        return loopback_target
    if key == "module":
        return st.sampled_from(MODULE_NAMES) | any_text
    if key == "id":
        return digits | any_text
    if key == "debug":
        return st.sampled_from(["true", "false", "TRUE", "1", ""]) | any_text
    if key == "auth":
        return st.sampled_from(["public_v2", "nosuch", ""]) | any_text
    if key == "params":  # the landing page's extra parameters: a query string of its own, never a target
        return st.lists(st.tuples(st.sampled_from(["hostname", "auth", "debug", "x"]) | st.just("module"),
                                  any_text), max_size=3).map(urlencode)
    return any_text


# Unknown keys never equal a key with a meaning: a stray `target` must come from loopback_target.
other_key = any_text.filter(lambda key: key not in KEYS_WITH_MEANING)
query_item = st.one_of(st.sampled_from(KEYS_WITH_MEANING).flatmap(lambda k: st.tuples(st.just(k), _value_for(k))),
                       st.tuples(other_key, any_text))

def _mostly(item: st.SearchStrategy[tuple[str, str]]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """The item four times out of five, so that most requests get past "parameter is missing"."""
    return st.sampled_from([True, True, True, True, False]).flatmap(
        lambda present: item.map(lambda pair: [pair]) if present else st.just([]))


def _item(key: str) -> st.SearchStrategy[tuple[str, str]]:
    return st.tuples(st.just(key), _value_for(key))


# The parameters each route reads: usually present (in any order), then anything (repeated, unknown keys).
ROUTE_KEYS = {"/probe": ("module", "target"), "/": ("module", "target"), "/snmp": ("module", "target"),
              "/logs": ("id",)}


def _query_for(path: str) -> st.SearchStrategy[list[tuple[str, str]]]:
    main = [_mostly(_item(key)) for key in ROUTE_KEYS.get(path, ())]
    return st.tuples(st.tuples(*main).flatmap(lambda lists: st.permutations([i for items in lists for i in items])),
                     st.lists(query_item, max_size=4)).map(lambda parts: [*parts[0], *parts[1]])

header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("\t\xa0\xe9\xff"),
                      max_size=40)
number_text = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                        st.sampled_from(["1e309", "-1e309", "0x10", "1_0", " 2 ", "nan", "-0", "+3", "1e-320"]))
header_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~",
                      min_size=1, max_size=20)
basic = st.tuples(st.sampled_from([WEB_USER, "", "x:y"]) | header_text,
                  st.sampled_from([WEB_PASSWORD, ""]) | header_text).map(
    lambda pair: "Basic " + base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode())
authorization = st.one_of(basic, st.sampled_from(["Basic", "Basic ", "Basic !!!", "Bearer x", "basic Zm9vOmJhcg=="]),
                          header_text)
known_headers = st.fixed_dictionaries({}, optional={
    TIMEOUT_HEADER: number_text | header_text,
    "Accept": st.sampled_from(["application/openmetrics-text; version=1.0.0", "application/openmetrics-text",
                               "text/plain;version=0.0.4", "*/*", "application/openmetrics-text; version=9",
                               "application/openmetrics-text;q=0.5, text/plain;q=1"]) | header_text,
    "Accept-Encoding": st.sampled_from(["gzip", "identity", "gzip;q=0", "*", "br, gzip"]) | header_text,
    "Authorization": authorization,
    "Content-Type": header_text,
    "Host": st.sampled_from(["127.0.0.1", "", "[::1]:1", "a" * 300]) | header_text,
    "Cookie": header_text,
    "X-Forwarded-For": header_text,
})
headers = st.tuples(known_headers, st.dictionaries(header_name, header_text, max_size=3)).map(
    lambda pair: {**pair[1], **pair[0]})
EXTRA_METHODS = ["GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"]
# Mostly the route itself; sometimes a near miss (404, or the trailing-slash redirect).
path_variant = st.sampled_from([""] * 12 + ["/", "%00", "/x"])


def _request_for(path: str, methods: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        # The route's own methods about twice as often as all the others together.
        "method": st.sampled_from([*methods * max(2, 18 // len(methods)), *EXTRA_METHODS]),
        "url": path_variant.map(lambda suffix: path + suffix),
        "params": _query_for(path),
        "headers": headers,
        "content": st.none() | st.binary(max_size=64),
    })


# --- the properties ---------------------------------------------------------------------------------

def _upstream_server_error(request: dict[str, Any], body: str) -> bool:
    """The 5xx kept from the Go exporters, each only where it applies (see the module docstring)."""
    path = request["url"]
    timeout = request["headers"].get(TIMEOUT_HEADER, "")
    if (path in ("/probe", "/snmp") and body.startswith("Failed to parse timeout from Prometheus header: ")
            and timeout and not is_number(timeout)):
        return True
    return path == "/snmp" and body.startswith("An error has occurred while serving metrics:")


def _check(client: TestClient, request: dict[str, Any]) -> None:
    # As bytes: HTTP allows Latin-1 header values, which the client would refuse to encode as text.
    raw_headers = {name: value.encode("latin-1") for name, value in request["headers"].items()}
    response = client.request(request["method"], request["url"], params=request["params"],
                              headers=raw_headers, content=request["content"], follow_redirects=False)
    described = f"{request['method']} {request['url']} params={request['params']!r} headers={request['headers']!r}"
    attempts, outside_attempts[:] = list(outside_attempts), []
    assert not attempts, f"{described}: tried to reach {attempts}"
    if response.status_code >= 500:
        body = response.text
        if request["method"] == "HEAD":  # no body: the reason is in the same request's GET answer
            body = client.get(request["url"], params=request["params"], headers=raw_headers,
                              follow_redirects=False).text
        assert _upstream_server_error(request, body), f"{described}: {response.status_code} {body[:500]}"
    assert "Traceback (most recent call last)" not in response.text, described
    assert "fuzz-never-shown" not in response.text, described


FUZZ_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                HealthCheck.data_too_large])


@pytest.mark.parametrize(("path", "methods"), ROUTES, ids=[path for path, _ in ROUTES])
def test_no_5xx_on_any_input(client: TestClient, path: str, methods: list[str]) -> None:
    @FUZZ_SETTINGS
    @given(request=_request_for(path, methods))
    def fuzz(request: dict[str, Any]) -> None:
        _check(client, request)

    fuzz()


@pytest.mark.parametrize("path", ["/metrics", "/probe", "/config"])
def test_no_5xx_behind_basic_auth(guarded_client: TestClient, path: str) -> None:
    @FUZZ_SETTINGS
    @given(request=_request_for(path, ["GET"]))
    def fuzz(request: dict[str, Any]) -> None:
        _check(guarded_client, request)

    fuzz()


def test_every_route_is_fuzzed() -> None:
    """The routes above come from the app itself, so a new route is fuzzed without a change here."""
    paths = {path for path, _ in ROUTES}
    assert {"/probe", "/snmp", "/logs", "/", "/config", "/metrics", "/-/reload", "/-/healthy", "/-/ready",
            "/static/style.css"} <= paths


def test_the_loopback_guard_refuses_other_addresses() -> None:
    """The guard itself: without it, a strategy bug would send fuzz traffic off the machine."""
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.org", 80)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(OSError):
        sock.sendto(b"x", ("192.0.2.1", 9))
    assert outside_attempts == ["sendto ('192.0.2.1', 9)"]
    outside_attempts.clear()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", 9))  # loopback passes

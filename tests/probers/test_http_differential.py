"""The lean HTTP/1.1 exchange against httpcore, on the same real servers: every case gives the same metric
families, label sets and non-timing values on both paths, hostile servers included."""

from __future__ import annotations

import gzip
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from probe_exporter.probers.http import client
from tests.support.http_probe import ProbeResult, http_module, probe
from tests.support.http_server import LocalServer, Req, Resp, Takeover, TLSMaterial, redirect

# Families whose values are durations: only their label sets are compared.
TIMING = {"probe_duration_seconds", "probe_http_duration_seconds", "probe_dns_lookup_time_seconds"}


def _comparable(result: ProbeResult) -> dict[str, dict[tuple[tuple[str, str], ...], float | None]]:
    return {name: {labels: None if name in TIMING else value for labels, value in series.items()}
            for name, series in result.families.items()}


def _send_for(server: LocalServer, head: bytes, chunk: bytes, seconds: float, pause: float) -> Callable[
        [socket.socket], None]:
    """`head`, then `chunk` every `pause` seconds for `seconds` (or until the client goes away)."""
    def action(sock: socket.socket) -> None:
        sock.sendall(head)
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline and not server._closing.wait(pause):
                sock.sendall(chunk)
        except OSError:
            pass

    return action


def _reset_mid_body(sock: socket.socket) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
    time.sleep(0.2)  # the head is read before the reset arrives
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _garbage(data: bytes) -> Takeover:
    def action(sock: socket.socket) -> None:
        sock.sendall(data)
        sock.close()

    return Takeover(action)


def _redirect_loop(req: Req) -> Resp:
    return redirect(f"{req.prefix}/again")


# name -> (handler factory on the plain server, http config, probe timeout)
Case = tuple[Callable[[LocalServer], Callable[[Req], Resp | Takeover]], dict[str, Any], float]
CASES: dict[str, Case] = {
    "ok": (lambda s: lambda req: Resp(body=b"hello"), {}, 5),
    "not-found": (lambda s: lambda req: Resp(status=404, body=b"no"), {}, 5),
    "head": (lambda s: lambda req: Resp(body=b"x" * 100), {"method": "HEAD"}, 5),
    "post-body": (lambda s: lambda req: Resp(body=req.body), {"method": "POST", "body": "ping"}, 5),
    "no-content": (lambda s: lambda req: Resp(status=204), {}, 5),
    "chunked": (lambda s: lambda req: Resp(body=b"abc" * 1000, chunked=True), {}, 5),
    "ends-on-close": (lambda s: lambda req: Resp(body=b"until close", content_length=False), {}, 5),
    "http-1.0": (lambda s: lambda req: Resp(body=b"old", version="HTTP/1.0"), {}, 5),
    "body-regex": (lambda s: lambda req: Resp(body=b"status: green"),
                   {"fail_if_body_not_matches_regexp": ["green"], "fail_if_body_matches_regexp": ["red"]}, 5),
    "header-regex": (lambda s: lambda req: Resp(headers=[("X-State", "bad")]),
                     {"fail_if_header_matches": [{"header": "X-State", "regexp": "bad"}]}, 5),
    "gzip": (lambda s: lambda req: Resp(headers=[("Content-Encoding", "gzip")], body=gzip.compress(b"z" * 5000)),
             {"compression": "gzip"}, 5),
    "last-modified": (lambda s: lambda req: Resp(headers=[("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")]),
                      {}, 5),
    "one-redirect": (lambda s: lambda req: redirect(f"{req.prefix}/done") if req.path == "/" else Resp(body=b"ok"),
                     {}, 5),
    "redirect-not-followed": (lambda s: lambda req: redirect(f"{req.prefix}/done"), {"follow_redirects": False}, 5),
    "redirect-loop": (lambda s: _redirect_loop, {}, 5),
    "cookies-over-redirect": (
        lambda s: lambda req: (redirect(f"{req.prefix}/done", headers=[("Set-Cookie", "a=1; Path=/")])
                               if req.path == "/" else Resp(status=200 if req.header("Cookie") == "a=1" else 400)),
        {}, 5),
    "wrong-version": (lambda s: lambda req: Resp(), {"valid_http_versions": ["HTTP/2.0"]}, 5),
    "not-ssl": (lambda s: lambda req: Resp(), {"fail_if_not_ssl": True}, 5),
    # hostile servers
    "infinite-body-with-limit": (
        lambda s: lambda req: Takeover(_send_for(s, b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n",
                                                 b"x" * 65536, 10, 0)), {"body_size_limit": "1MB"}, 5),
    "infinite-body-until-deadline": (
        lambda s: lambda req: Takeover(_send_for(s, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                                                 b"10000\r\n" + b"y" * 65536 + b"\r\n", 10, 0)),
        {"fail_if_body_not_matches_regexp": ["never there"]}, 0.8),
    "gzip-bomb": (lambda s: lambda req: Resp(headers=[("Content-Encoding", "gzip")],
                                             body=gzip.compress(b"\0" * (16 << 20), compresslevel=1)),
                  {"compression": "gzip", "body_size_limit": "1MB"}, 5),
    "trickle-10s": (lambda s: lambda req: Takeover(_send_for(s, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                                                             b"x", 10, 0.1)), {}, 0.8),
    "10k-headers": (lambda s: lambda req: Resp(headers=[(f"X-Header-{i:05}", "v") for i in range(10_000)]), {}, 5),
    "invalid-status-line": (lambda s: lambda req: _garbage(b"HTTP/1.1 abc\r\n\r\n"), {}, 5),
    "not-http": (lambda s: lambda req: _garbage(b"this is not http\r\n\r\n"), {}, 5),
    "closed-mid-body": (lambda s: lambda req: _garbage(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part"),
                        {}, 5),
    "reset-mid-body": (lambda s: lambda req: Takeover(_reset_mid_body), {}, 5),
    "informational-first": (lambda s: lambda req: _garbage(b"HTTP/1.1 100 Continue\r\n\r\n"
                                                           b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), {}, 5),
    "head-flood": (lambda s: lambda req: Takeover(_send_for(s, b"HTTP/1.1 200 OK\r\n", b"X-Flood: 1\r\n" * 1000,
                                                            10, 0)), {}, 5),
}


@pytest.fixture()
def on_path() -> Iterator[Callable[[str | None], None]]:
    previous = client.FORCED_PATH

    def choose(path: str | None) -> None:
        client.FORCED_PATH = path

    yield choose
    client.FORCED_PATH = previous


async def _both(url: str, config: dict[str, Any], timeout: float,
                on_path: Callable[[str | None], None]) -> tuple[ProbeResult, ProbeResult]:
    on_path(None)
    lean = await probe(url, config, timeout=timeout, module=http_module(config, timeout=f"{timeout}s"))
    on_path("httpcore")
    core = await probe(url, config, timeout=timeout, module=http_module(config, timeout=f"{timeout}s"))
    return lean, core


@pytest.mark.parametrize("case", list(CASES))
async def test_both_paths_agree(http_server: LocalServer, case: str, on_path: Callable[[str | None], None]) -> None:
    handler, config, timeout = CASES[case]
    url = http_server.route(handler(http_server))
    lean, core = await _both(url, {**config}, timeout, on_path)
    assert 'path=lean' in lean.log
    assert 'path=httpcore' in core.log
    assert lean.success == core.success
    assert _comparable(lean) == _comparable(core)


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2-by-alpn"])
async def test_both_paths_agree_over_tls(https_server: LocalServer, tls_material: TLSMaterial, http2: bool,
                                         on_path: Callable[[str | None], None]) -> None:
    url = https_server.route(lambda req: Resp(body=b"secure"))
    config = {"enable_http2": http2, "tls_config": {"ca_file": str(tls_material.ca_file)}}
    lean, core = await _both(url, config, 5, on_path)
    assert lean.success and core.success
    assert lean.value("probe_http_version") == (2.0 if http2 else 1.1)
    assert _comparable(lean) == _comparable(core)


async def test_the_path_and_its_reason_are_in_the_debug_output(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp())
    result = await probe(url, {"enable_http2": False})
    assert 'msg="HTTP exchange path" ' in result.log
    assert "path=lean" in result.log and "HTTP/2 disabled" in result.log
    proxied = await probe(url, {"proxy_url": "http://127.0.0.1:1"})
    assert "path=httpcore" in proxied.log and "proxy" in proxied.log

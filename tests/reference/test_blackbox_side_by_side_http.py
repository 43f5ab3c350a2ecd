"""Side by side with Debian's blackbox_exporter (0.23): http probes.

The Go exporter runs on a loopback port with a generated blackbox.yml that probe_exporter loads too.
For every (module, target) both probe the same real local server (HTTP/1.1, HTTPS with HTTP/2,
redirects, compression, regex failures, refused and unresolvable targets), and the test compares
metric family names, label sets and every value that is not a timing.

We follow upstream master (0.28+): the differences from 0.23 are listed in VERSION_DIFFERENCES with
the upstream change that caused them, and nothing else may differ.
"""

from __future__ import annotations

import gzip
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.blackbox_reference import REQUIRES_BLACKBOX, assert_same_samples, blackbox_exporter, probe_both
from tests.support.http_server import LocalServer, Req, Resp, Takeover, TLSMaterial, redirect
from tests.support.ports import free_port

pytestmark = REQUIRES_BLACKBOX
TIMEOUT = 3.0

# Families 0.23 lacks: probe_tls_cipher_info came in 0.26 (and the serialnumber label of
# probe_ssl_last_chain_info, which is dropped before comparing).
VERSION_DIFFERENCES = {"probe_tls_cipher_info": "0.26 added probe_tls_cipher_info"}


def _config(tls: TLSMaterial, proxy: str) -> str:
    ca = f'{{ca_file: "{tls.ca_file}"}}'
    return f"""modules:
  http_proxy: {{prober: http, timeout: 3s, http: {{preferred_ip_protocol: ip4, proxy_url: "{proxy}"}}}}
  http_2xx: {{prober: http, timeout: 3s, http: {{preferred_ip_protocol: ip4}}}}
  http_404_ok: {{prober: http, timeout: 3s, http: {{preferred_ip_protocol: ip4, valid_status_codes: [404]}}}}
  http_no_follow:
    prober: http
    timeout: 3s
    http: {{preferred_ip_protocol: ip4, follow_redirects: false, valid_status_codes: [302]}}
  http_tls: {{prober: http, timeout: 3s, http: {{preferred_ip_protocol: ip4, tls_config: {ca}}}}}
  http_tls_insecure:
    prober: http
    timeout: 3s
    http: {{preferred_ip_protocol: ip4, tls_config: {{insecure_skip_verify: true}}}}
  http_tls_h1:
    prober: http
    timeout: 3s
    http: {{preferred_ip_protocol: ip4, enable_http2: false, tls_config: {ca}}}
  http_body_regex:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      fail_if_body_matches_regexp: ["database (is )?down"]
  http_header_regex:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      fail_if_header_not_matches:
      - header: Content-Type
        regexp: "^application/json"
  http_gzip:
    prober: http
    timeout: 3s
    http: {{preferred_ip_protocol: ip4, compression: gzip, body_size_limit: 64KB}}
  http_size_limit: {{prober: http, timeout: 3s, http: {{preferred_ip_protocol: ip4, body_size_limit: 128B}}}}
  http_post:
    prober: http
    timeout: 3s
    http: {{preferred_ip_protocol: ip4, method: POST, body: '{{"ping": 1}}', valid_status_codes: [201]}}
  http_not_ssl: {{prober: http, timeout: 3s, http: {{preferred_ip_protocol: ip4, fail_if_not_ssl: true}}}}
  http_ssl: {{prober: http, timeout: 3s, http: {{preferred_ip_protocol: ip4, fail_if_ssl: true, tls_config: {ca}}}}}
  http_bad_ca:
    prober: http
    timeout: 3s
    http: {{preferred_ip_protocol: ip4, tls_config: {{ca_file: /nonexistent/ca.pem}}}}
  http_versions:
    prober: http
    timeout: 3s
    http: {{preferred_ip_protocol: ip4, valid_http_versions: ["HTTP/2.0"]}}
"""


def _routes(http: LocalServer, https: LocalServer, https_h1: LocalServer) -> dict[str, str]:
    def chain(req: Req) -> Resp:
        hops = {"/": "/one", "/one": "/two"}
        if req.path in hops:
            return redirect(req.prefix + hops[req.path], headers=[("Set-Cookie", f"hop={req.path}")])
        return Resp(body=b"arrived", headers=[("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")])

    payload = b"compressed " * 200
    return {
        "ok": http.route(lambda req: Resp(body=b"hello", headers=[("Content-Type", "text/plain")])),
        "not_found": http.route(lambda req: Resp(status=404, body=b"not found")),
        "redirect": http.route(chain),
        "loop": http.route(lambda req: redirect(req.prefix + "/again")),
        "down": http.route(lambda req: Resp(status=200, body=b"the database is down")),
        "json": http.route(lambda req: Resp(body=b"{}", headers=[("Content-Type", "application/json")])),
        "gzip": http.route(lambda req: Resp(body=gzip.compress(payload), headers=[("Content-Encoding", "gzip")])),
        "big": http.route(lambda req: Resp(body=b"x" * 1000)),
        "chunked": http.route(lambda req: Resp(body=b"y" * 300, chunked=True)),
        "created": http.route(lambda req: Resp(status=201 if req.method == "POST" else 400)),
        "tls": https.route(lambda req: Resp(body=b"secure")),
        "tls_h1": https_h1.route(lambda req: Resp(body=b"secure")),
        "to_tls": http.route(lambda req: redirect(https.base.replace("127.0.0.1", "localhost") + "/elsewhere")),
        "garbage": http.route(lambda req: Takeover(_garbage)),
        "reset": http.route(lambda req: Takeover(_reset)),
        "truncated": http.route(lambda req: Takeover(_truncated)),
    }


def _garbage(sock: socket.socket) -> None:
    sock.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
    sock.close()


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _truncated(sock: socket.socket) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\nshort")
    sock.close()


@dataclass
class World:
    config_file: Path
    go_url: str
    targets: dict[str, str]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(tmp_path_factory: pytest.TempPathFactory, http_server: LocalServer, https_server: LocalServer,
                https_h1_server: LocalServer, tls_material: TLSMaterial) -> AsyncIterator[World]:
    directory = tmp_path_factory.mktemp("side_by_side_http")
    config_file = directory / "blackbox.yml"
    config_file.write_text(_config(tls_material, http_server.base))
    targets = _routes(http_server, https_server, https_h1_server)
    # Through a proxy (the plain server answers absolute-form requests by path): the target port is closed.
    proxied = http_server.route(lambda req: Resp(body=b"via proxy"))
    targets["via_proxy"] = f"http://127.0.0.1:{free_port()}/{proxied.rsplit('/', 1)[1]}"
    targets["refused"] = f"http://127.0.0.1:{free_port()}/"
    targets["unresolvable"] = "http://nothing-here.invalid/"
    targets["ok_no_scheme"] = targets["ok"].removeprefix("http://")
    async with blackbox_exporter(config_file) as go_url:
        yield World(config_file=config_file, go_url=go_url, targets=targets)


CASES: list[tuple[str, str]] = [
    ("http_2xx", "ok"),
    ("http_2xx", "ok_no_scheme"),
    ("http_2xx", "not_found"),
    ("http_404_ok", "not_found"),
    ("http_2xx", "redirect"),
    ("http_no_follow", "redirect"),
    ("http_2xx", "loop"),
    ("http_2xx", "refused"),
    ("http_2xx", "unresolvable"),
    ("http_2xx", "chunked"),
    ("http_tls", "tls"),
    ("http_tls_h1", "tls_h1"),
    ("http_tls_insecure", "tls"),
    ("http_2xx", "tls"),  # the test CA is not trusted
    ("http_tls", "to_tls"),
    ("http_body_regex", "down"),
    ("http_body_regex", "ok"),
    ("http_header_regex", "ok"),
    ("http_header_regex", "json"),
    ("http_gzip", "gzip"),
    ("http_gzip", "ok"),
    ("http_size_limit", "big"),
    ("http_post", "created"),
    ("http_not_ssl", "ok"),
    ("http_ssl", "tls"),
    ("http_versions", "ok"),
    ("http_bad_ca", "ok"),
    ("http_proxy", "via_proxy"),
    ("http_2xx", "garbage"),
    ("http_2xx", "reset"),
    ("http_2xx", "truncated"),
]


@pytest.mark.parametrize(("module_name", "target_key"), CASES, ids=[f"{m}-{t}" for m, t in CASES])
async def test_same_metrics_as_blackbox_exporter(world: World, module_name: str, target_key: str) -> None:
    target = world.targets[target_key]
    both = await probe_both(world.go_url, world.config_file, module_name, target, TIMEOUT)
    for name in VERSION_DIFFERENCES:
        assert name not in both.go, f"{name} appeared in the reference binary: update VERSION_DIFFERENCES"
        both.ours.pop(name, None)

    assert_same_samples(both)

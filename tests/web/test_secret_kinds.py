"""Secrets masked by kind: URL passwords (proxy_url, OAuth2 token_url, DSNs) and Authorization-like
headers in any headers block, by the one masking function (probe_exporter.masking), everywhere it shows.

The end-to-end test runs the exporter as a process (real uvicorn, debug logging on stderr) against a
real forward proxy, token endpoint and PostgreSQL on loopback, and looks for every marker in /config,
`debug=true`, the landing page, /logs and the process log.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe_exporter.config import ConfigError, load_config
from probe_exporter.config.render import config_as_yaml, module_as_yaml
from probe_exporter.config.secrets import secret_values
from probe_exporter.config.sql import DSN_UNPARSABLE
from probe_exporter.masking import SECRET_MARK, mask, mask_tree
from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.support.processes import http_get, running

PROXY_PASSWORD = "Sekrit-proxy-4a1"
TOKEN_URL_PASSWORD = "Sekrit-tokenurl-4b2"
PLAIN_AUTHORIZATION = "Sekrit-plainauth-4c3"
COOKIE = "Sekrit-cookie-4d4"
API_KEY = "Sekrit-apikey-4e5"
GRPC_AUTHORIZATION = "Sekrit-grpcauth-4f6"
DSN_PASSWORD = "Sekrit-dsnpass-4g7"
MARKERS = [PROXY_PASSWORD, TOKEN_URL_PASSWORD, PLAIN_AUTHORIZATION, COOKIE, API_KEY, GRPC_AUTHORIZATION, DSN_PASSWORD]


# --- the masking function, by kind ---------------------------------------------------------------

def test_mask_url_passwords_and_password_like_parameters() -> None:
    assert mask("http://user:pw-1234@proxy:3128") == f"http://user:{SECRET_MARK}@proxy:3128"
    # a password a URL parser would split (unencoded # ? @) is masked whole
    assert mask("postgresql://u:pa#s?s@w@db/x") == f"postgresql://u:{SECRET_MARK}@db/x"
    assert mask("dial http://127.0.0.1:8080/users/@me failed") == "dial http://127.0.0.1:8080/users/@me failed"
    assert mask("GET /x?sslpassword=abc&mode=1 access_token='t k'") == (
        f"GET /x?sslpassword={SECRET_MARK}&mode=1 access_token={SECRET_MARK}")
    assert mask("timeout_seconds=3 keep=1") == "timeout_seconds=3 keep=1"
    # known values: the longest first, so a secret containing another leaves nothing behind
    assert mask("a abcd-1234 abcd", {"abcd", "abcd-1234"}) == f"a {SECRET_MARK} {SECRET_MARK}"


def test_mask_tree_masks_secret_headers_in_any_block_and_keeps_the_rest() -> None:
    data = {"http": {"headers": {"AUTHORIZATION": "Bearer x", "Accept": "text/plain"},
                     "http_headers": {"cookie": {"values": ["a=b"], "files": ["/run/cookie"]}},
                     "authorization": {"type": "Bearer"},
                     "proxy_url": "http://u:p@proxy:1"},
            "grpc": {"metadata": {"X-Api-Key": ["k1", "k2"]}}}
    assert mask_tree(data) == {
        "http": {"headers": {"AUTHORIZATION": SECRET_MARK, "Accept": "text/plain"},
                 "http_headers": {"cookie": {"values": [SECRET_MARK], "files": ["/run/cookie"]}},
                 "authorization": {"type": "Bearer"},  # a config key, not a header: not masked
                 "proxy_url": f"http://u:{SECRET_MARK}@proxy:1"},
        "grpc": {"metadata": {"X-Api-Key": [SECRET_MARK, SECRET_MARK]}}}


def _modules(proxy_port: int, dead_port: int) -> str:
    collectors = REPO / "modules" / "sql" / "postgresql.collector.yml"
    return f"""modules:
  via_proxy:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      proxy_url: "http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:{proxy_port}"
      headers: {{Authorization: "{PLAIN_AUTHORIZATION}", Cookie: "session={COOKIE}", Accept: visible-header}}
      http_headers:
        x-api-key: {{values: ["{API_KEY}"]}}
  dead_proxy:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      proxy_url: "http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:{dead_port}"
  oauth_userinfo:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      oauth2:
        client_id: probe
        client_secret: client-secret-typed
        token_url: "http://tokuser:{TOKEN_URL_PASSWORD}@127.0.0.1:{proxy_port}/token"
  grpc_metadata:
    prober: grpc
    timeout: 2s
    grpc:
      preferred_ip_protocol: ip4
      metadata:
        Authorization: ["Bearer {GRPC_AUTHORIZATION}"]
  sql_dsn:
    prober: sql
    timeout: 5s
    sql:
      driver: sqlalchemy
      dsn: "postgresql+psycopg://nosuchuser:{DSN_PASSWORD}@{{host}}:{{port}}/test"
      default_port: 5432
      target_allow: [127.0.0.1/32]
      collector_files: ["{collectors}"]
"""


def test_every_kind_is_collected_as_a_secret_value(tmp_path: Path) -> None:
    path = tmp_path / "m.yml"
    path.write_text(_modules(1, 2))
    config = load_config([str(path)])
    values = secret_values(*config.modules.values())
    assert set(MARKERS) | {"session=" + COOKIE} <= values
    page = config_as_yaml(config) + module_as_yaml(config.modules["via_proxy"])
    assert not [marker for marker in MARKERS if marker in page]
    assert f"proxyuser:{SECRET_MARK}@127.0.0.1" in page and f"nosuchuser:{SECRET_MARK}@{{host}}" in page
    assert "Accept: visible-header" in page  # only secret headers are masked


# --- end to end: a real proxy, token endpoint and PostgreSQL ----------------------------------------

class _ProxyAndTokenHandler(http.server.BaseHTTPRequestHandler):
    """A forward proxy (absolute-form GET: answers 200 itself) and an OAuth2 token endpoint (POST /token).
    Records the credential headers it receives, to show the secrets were used, not just hidden."""

    protocol_version = "HTTP/1.1"
    received: list[dict[str, str]] = []

    def _answer(self, body: bytes, content_type: str = "text/plain") -> None:
        self.received.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(b"through the proxy\n")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(json.dumps({"access_token": "issued-token-1", "token_type": "Bearer"}).encode(),
                     "application/json")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def proxy_port() -> Iterator[int]:
    _ProxyAndTokenHandler.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProxyAndTokenHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _assert_clean(where: str, text: str) -> None:
    leaked = [marker for marker in MARKERS if marker in text]
    assert not leaked, f"{where} leaks {leaked}"


def test_url_passwords_and_secret_headers_appear_nowhere(tmp_path: Path, proxy_port: int,
                                                         plain_http_target: str) -> None:
    config_file = tmp_path / "kinds.yml"
    config_file.write_text(_modules(proxy_port, free_port()))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "exporter.log"
    argv = [sys.executable, "-m", "probe_exporter", "--config.file", str(config_file),
            "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "debug"]
    probes = [("via_proxy", plain_http_target + "/"), ("dead_proxy", plain_http_target + "/"),
              ("oauth_userinfo", plain_http_target + "/"), ("grpc_metadata", f"127.0.0.1:{free_port()}"),
              ("sql_dsn", "127.0.0.1")]
    with running(argv, log, base + "/-/healthy"):
        for module, target in probes:
            for debug in ("false", "true"):
                query = f"module={module}&target={target}&debug={debug}"
                status, body = http_get(f"{base}/probe?{query}", timeout=15)
                assert status == 200, body
                _assert_clean(f"/probe {module} debug={debug}", body)
                if module == "via_proxy":
                    assert ("probe_success 1" in body) if debug == "false" else (SECRET_MARK in body)
        status, config_page = http_get(base + "/config")
        _assert_clean("/config", config_page)
        assert f"proxyuser:{SECRET_MARK}@127.0.0.1:{proxy_port}" in config_page
        assert f"tokuser:{SECRET_MARK}@127.0.0.1" in config_page
        _, landing = http_get(base + "/")
        _assert_clean("landing page", landing)
        ids = sorted(set(re.findall(r'href="logs\?id=(\d+)"', landing)))
        assert len(ids) == 2 * len(probes)
        for probe_id in ids:
            _, text = http_get(f"{base}/logs?id={probe_id}")
            _assert_clean(f"/logs?id={probe_id}", text)
        # the form on the landing page runs a probe and shows its debug text
        _, form = http_get(f"{base}/?module=dead_proxy&target={plain_http_target}/")
        _assert_clean("landing page form", form)
    process_log = log.read_text()
    _assert_clean("process log (stderr)", process_log)
    assert process_log.count("\n") > 20 and "level=debug" in process_log  # debug logging really ran
    # The secrets were used: the proxy got the proxy password and the configured headers.
    via_proxy = [r for r in _ProxyAndTokenHandler.received if r["path"].startswith("http://")]
    assert via_proxy and all(r.get("proxy-authorization", "").startswith("Basic ") for r in via_proxy)
    assert via_proxy[0].get("authorization") == PLAIN_AUTHORIZATION and COOKIE in via_proxy[0].get("cookie", "")


# --- a DSN that does not parse -------------------------------------------------------------------

UNPARSABLE_DSNS = [
    "postgresql://u:pa#ss-Sekrit@db.internal.example/db",   # the issue's case: '#' starts a fragment
    "postgresql://u:pa?ss-Sekrit@db.internal.example/db",   # '?' starts the query
    "postgresql://u:12/ss-Sekrit@db.internal.example/db",   # '/' ends the netloc with a numeric "port"
    "postgresql://u:12#ss-Sekrit@db.internal.example:{port}/db",
    "postgresql://u:pass@[db.internal.example/db",          # an unclosed IPv6 bracket
    "host=db.internal.example password=ss-Sekrit",          # not a URL at all
]


@pytest.mark.parametrize("dsn", UNPARSABLE_DSNS)
def test_an_unparsable_dsn_is_refused_at_load_quoting_none_of_it(tmp_path: Path, dsn: str) -> None:
    path = tmp_path / "dsn.yml"
    path.write_text(f"modules:\n  pg:\n    prober: sql\n    sql:\n      driver: postgresql\n"
                    f"      target_allow: [127.0.0.1/32]\n      dsn: '{dsn}'\n"
                    f"      collectors: [{{collector_name: c, metrics: [{{metric_name: m, type: gauge, help: h, "
                    f"values: [v], query: 'SELECT 1 AS v'}}]}}]\n")
    with pytest.raises(ConfigError) as caught:
        load_config([str(path)])
    message = str(caught.value)
    # file, line and key, then a fixed text: nothing of the DSN
    assert message == f"error parsing config file: {path}:7: modules.pg.sql.dsn: {DSN_UNPARSABLE}"
    check = subprocess.run([sys.executable, "-m", "probe_exporter", "--config.check", "--config.file", str(path)],
                           capture_output=True, text=True, cwd=REPO, timeout=60)
    assert check.returncode == 1 and "dsn does not parse as a URL" in check.stderr
    assert "Sekrit" not in check.stdout + check.stderr and "db.internal" not in check.stdout + check.stderr


@pytest.mark.parametrize("host", ["{host}", "[{host}]"])
def test_a_dsn_template_with_placeholders_and_encoded_password_loads(tmp_path: Path, host: str) -> None:
    path = tmp_path / "dsn.yml"
    path.write_text("modules:\n  pg:\n    prober: sql\n    sql:\n      driver: postgresql\n"
                    f"      target_allow: [127.0.0.1/32]\n      dsn: 'postgresql://u:pa%23ss@{host}:{{port}}/db'\n"
                    "      collectors: [{collector_name: c, metrics: [{metric_name: m, type: gauge, help: h, "
                    "values: [v], query: 'SELECT 1 AS v'}]}]\n")
    module = load_config([str(path)]).modules["pg"]
    assert module.sql is not None and module.sql.has_credentials()
    assert f"u:{SECRET_MARK}@{host}" in module_as_yaml(module) and "pa%23ss" not in module_as_yaml(module)

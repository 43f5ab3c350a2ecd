"""Secret hygiene, proven end to end: secrets configured in every prober kind never appear in /config,
debug output, the landing page, the history (/logs), any process log line at any level, or any error
body — for successful probes, failed probes, refused requests and broken reloads alike.

Every secret is a unique marker string so a leak cannot hide behind a coincidence.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import trustme
from fastapi.testclient import TestClient

from probe_exporter import logs
from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.support.paths import REPO

HTTP_SECRETS = {
    "basic_auth": "Sekrit-basic-0a1",
    "bearer_token": "Sekrit-bearer-0b2",
    "authorization": "Sekrit-authz-0c3",
    "http_headers": "Sekrit-header-0d4",
    "oauth2": "Sekrit-oauth-0e5",
}
SNMP_SECRETS = {
    "community": "Sekrit-community-1a1",
    "v3_auth": "Sekrit-v3auth-1b2",
    "v3_priv": "Sekrit-v3priv-1c3",
}
SQL_SECRETS = {
    "pg_password": "Sekrit-pgpass-2a1",
    "mysql_password": "Sekrit-mypass-2b2",
    "dsn_password": "Sekrit-dsnpass-2c3",
}
WEB_PASSWORD = "Sekrit-webpass-3a1"
WEB_HASH = bcrypt.hashpw(WEB_PASSWORD.encode(), bcrypt.gensalt(4)).decode()


@pytest.fixture(scope="module")
def tls_key_pem() -> tuple[str, str]:
    cert = trustme.CA().issue_cert("client.example")
    return cert.cert_chain_pems[0].bytes().decode(), cert.private_key_pem.bytes().decode()


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.strip().splitlines())


def _http_modules(tls: tuple[str, str], token_url: str) -> str:
    cert, key = tls
    return f"""
  http_basic:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      basic_auth: {{username: probe, password: {HTTP_SECRETS["basic_auth"]}}}
      headers: {{X-Plain: visible-on-purpose}}
  http_bearer:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      bearer_token: {HTTP_SECRETS["bearer_token"]}
  http_authorization:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      authorization: {{type: Token, credentials: {HTTP_SECRETS["authorization"]}}}
      http_headers:
        X-Api-Key: {{secrets: [{HTTP_SECRETS["http_headers"]}]}}
  http_oauth2:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      oauth2: {{client_id: probe, client_secret: {HTTP_SECRETS["oauth2"]}, token_url: "{token_url}"}}
  http_client_cert:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        cert: |
{_indent(cert, 10)}
        key: |
{_indent(key, 10)}
"""


def _snmp_modules() -> str:
    return f"""
  snmp_v2:
    prober: snmp
    timeout: 500ms
    snmp:
      walk: [1.3.6.1.2.1.1]
      auth: {{community: {SNMP_SECRETS["community"]}}}
      retries: 0
  snmp_v3:
    prober: snmp
    timeout: 500ms
    snmp:
      walk: [1.3.6.1.2.1.1]
      auth:
        version: 3
        username: probe
        security_level: authPriv
        password: {SNMP_SECRETS["v3_auth"]}
        auth_protocol: SHA
        priv_password: {SNMP_SECRETS["v3_priv"]}
        priv_protocol: AES
      retries: 0
"""


def _sql_modules() -> str:
    collectors = REPO / "modules" / "sql"
    return f"""
  sql_pg:
    prober: sql
    timeout: 5s
    sql:
      driver: postgresql
      database: test
      auth: {{username: postgres, password: {SQL_SECRETS["pg_password"]}}}
      target_allow: [127.0.0.1/32]
      collector_files: ["{collectors / "postgresql.collector.yml"}"]
  sql_mysql:
    prober: sql
    timeout: 5s
    sql:
      driver: mysql
      database: test
      auth: {{username: root, password: {SQL_SECRETS["mysql_password"]}}}
      target_allow: [127.0.0.1/32]
      collector_files: ["{collectors / "mariadb.collector.yml"}"]
  sql_dsn:
    prober: sql
    timeout: 5s
    sql:
      driver: sqlalchemy
      dsn: "postgresql+psycopg://nosuchuser:{SQL_SECRETS["dsn_password"]}@{{host}}:{{port}}/test"
      default_port: 5432
      target_allow: [127.0.0.1/32]
      collector_files: ["{collectors / "postgresql.collector.yml"}"]
"""


def _markers(tls: tuple[str, str]) -> list[str]:
    # The middle of the private key PEM: any part of it showing up would be a leak.
    key_lines = [line for line in tls[1].splitlines() if line and not line.startswith("-----")]
    return [*HTTP_SECRETS.values(), *SNMP_SECRETS.values(), *SQL_SECRETS.values(), WEB_PASSWORD, WEB_HASH,
            key_lines[len(key_lines) // 2]]


def _assert_clean(where: str, text: str, markers: list[str]) -> None:
    leaked = [marker for marker in markers if marker in text]
    assert not leaked, f"{where} leaks {leaked}"


class _Harness:
    def __init__(self, client: TestClient, log: io.StringIO, markers: list[str], config_file: Path) -> None:
        self.client, self.log, self.markers, self.config_file = client, log, markers, config_file
        self.checked = 0

    def get(self, where: str, path: str, **kwargs: object) -> str:
        response = self.client.get(path, **kwargs)  # type: ignore[arg-type]
        _assert_clean(f"{where} ({response.status_code})", response.text, self.markers)
        self.checked += 1
        return response.text


@pytest.fixture()
def harness(tmp_path: Path, tls_key_pem: tuple[str, str], plain_http_target: str) -> Iterator[_Harness]:
    sections = [_http_modules(tls_key_pem, plain_http_target + "/token"), _snmp_modules(), _sql_modules()]
    config_file = tmp_path / "secrets.yml"
    config_file.write_text("modules:" + "".join(sections))
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  admin: '{WEB_HASH}'\n")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.LogfmtFormatter())
    logger = logging.getLogger("probe_exporter")
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)  # every line at every level
    logger.propagate = False
    exporter = Exporter(Settings(config_files=[str(config_file)], web_config_file=str(web)))
    try:
        with TestClient(create_app(exporter)) as client:
            client.auth = ("admin", WEB_PASSWORD)
            yield _Harness(client, stream, _markers(tls_key_pem), config_file)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


HTTP_MODULES = ["http_basic", "http_bearer", "http_authorization", "http_oauth2", "http_client_cert"]
SNMP_MODULES = ["snmp_v2", "snmp_v3"]
SQL_MODULES = ["sql_pg", "sql_mysql", "sql_dsn"]


def _targets(module: str, plain_http_target: str) -> list[str]:
    if module.startswith("http"):
        # success, a failed status, a refused connection, and a target the module cannot even parse
        return [plain_http_target, plain_http_target + "/status/401", "http://127.0.0.1:9/", "http://[::1"]
    if module.startswith("snmp"):
        return ["127.0.0.1:9", "udp://[::1"]  # nothing answers SNMP on the discard port
    return ["127.0.0.1", "127.0.0.1:9", "10.255.255.1", "not a target"]  # real, refused, not allowed, malformed


def _exercise(harness: _Harness, modules: list[str], plain_http_target: str) -> None:
    for module in modules:
        for target in _targets(module, plain_http_target):
            where = f"{module} -> {target}"
            harness.get(f"/probe {where}", "/probe", params={"module": module, "target": target})
            harness.get(f"debug {where}", "/probe", params={"module": module, "target": target, "debug": "true"})
            harness.get(f"form {where}", "/", params={"module": module, "target": target})


def _check_everything_else(harness: _Harness) -> None:
    config = harness.get("/config", "/config")
    assert "<secret>" in config
    page = harness.get("landing page", "/")
    for probe_id in sorted(set(re.findall(r'href="logs\?id=(\d+)"', page))):
        harness.get(f"/logs?id={probe_id}", "/logs", params={"id": probe_id})
    # Error bodies: wrong web password, a bad SNMP auth name, a reload of a broken file.
    unauthorized = harness.client.get("/config", auth=("admin", "wrong"))
    assert unauthorized.status_code == 401
    _assert_clean("401 body", unauthorized.text, harness.markers)
    harness.get("/probe bad auth", "/probe", params={"module": "snmp_v2", "target": "127.0.0.1", "auth": "nosuch"})
    good = harness.config_file.read_text()
    # A YAML syntax error on a secret's own line: parsers like to quote the offending line.
    harness.config_file.write_text(good.replace(f"password: {HTTP_SECRETS['basic_auth']}}}",
                                                f"password: \"{HTTP_SECRETS['basic_auth']}}}"))
    reload = harness.client.post("/-/reload")
    assert reload.status_code == 500
    _assert_clean("reload error (YAML)", reload.text, harness.markers)
    # A type error next to a secret.
    harness.config_file.write_text(good.replace(f"bearer_token: {HTTP_SECRETS['bearer_token']}",
                                                f"bearer_token: [{HTTP_SECRETS['bearer_token']}]"))
    reload = harness.client.post("/-/reload")
    assert reload.status_code == 500
    _assert_clean("reload error (type)", reload.text, harness.markers)
    harness.config_file.write_text(good)
    _assert_clean("process log", harness.log.getvalue(), harness.markers)
    assert harness.log.getvalue().count("\n") > 20  # debug logging really ran


def test_http_secrets_never_leak(harness: _Harness, plain_http_target: str) -> None:
    _exercise(harness, HTTP_MODULES, plain_http_target)
    _check_everything_else(harness)
    assert "<secret>" in harness.get("debug", "/probe", params={"module": "http_basic", "target": plain_http_target,
                                                                "debug": "true"})


def test_snmp_and_sql_secrets_never_leak(harness: _Harness, plain_http_target: str) -> None:
    """SNMP communities and v3 passwords; SQL passwords and DSNs (real PostgreSQL and MariaDB when present:
    a failed login or a refused port must not echo the credentials either)."""
    _exercise(harness, SNMP_MODULES + SQL_MODULES, plain_http_target)
    _check_everything_else(harness)
    config = harness.get("/config", "/config")
    assert "nosuchuser:<secret>@" in config  # the DSN shows, its password does not


def test_cli_probe_and_config_check_never_leak(harness: _Harness, plain_http_target: str) -> None:
    runs = {}
    for module in ("http_basic", "snmp_v3", "sql_dsn"):  # in parallel: each is a fresh interpreter
        target = plain_http_target if module.startswith("http") else "127.0.0.1:9"
        runs[module] = subprocess.Popen(
            [sys.executable, "-m", "probe_exporter", "probe", "--config.file", str(harness.config_file),
             "--module", module, "--target", target, "--timeout", "3", "--debug", "--log.level", "debug"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    for module, process in runs.items():
        stdout, stderr = process.communicate(timeout=60)
        _assert_clean(f"CLI probe {module}", stdout + stderr, harness.markers)
        assert "Logs for the probe:" in stdout
    broken = harness.config_file.read_text().replace(f"bearer_token: {HTTP_SECRETS['bearer_token']}",
                                                     f"bearer_token: {{{HTTP_SECRETS['bearer_token']}")
    bad_file = harness.config_file.with_name("broken.yml")
    bad_file.write_text(broken)
    check = subprocess.run([sys.executable, "-m", "probe_exporter", "--config.check", "--config.file", str(bad_file)],
                           capture_output=True, text=True, cwd=REPO, timeout=60)
    assert check.returncode == 1
    _assert_clean("--config.check error", check.stdout + check.stderr, harness.markers)

"""--web.external-url, --web.route-prefix and --web.systemd-socket, as blackbox_exporter has them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from probe_exporter.cli import main
from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from probe_exporter.web.prefix import external_url, route_prefix
from tests.support.paths import REPO
from tests.support.ports import free_port

MODULES = str(REPO / "modules" / "network.yml")


def _client(**settings: str) -> TestClient:
    return TestClient(create_app(Exporter(Settings(config_files=[MODULES], **settings))), follow_redirects=False)


@pytest.mark.parametrize(("flag", "listen", "url", "prefix"), [
    ("http://proxy.example/blackbox/", ":10115", "http://proxy.example/blackbox", "/blackbox"),
    ("https://proxy.example", ":10115", "https://proxy.example", "/"),
    ("http://proxy.example/a/b//", ":10115", "http://proxy.example/a/b", "/a/b"),
])
def test_external_url_and_the_prefix_it_gives(flag: str, listen: str, url: str, prefix: str) -> None:
    assert external_url(flag, listen) == url
    assert route_prefix("", url) == prefix
    assert route_prefix("inner/", url) == "/inner"


def test_default_external_url_is_the_host_and_listen_port() -> None:
    assert external_url("", "127.0.0.1:9999").endswith(":9999")


def test_routes_are_served_under_the_external_urls_path(plain_http_target: str) -> None:
    with _client(web_external_url="http://proxy.example/blackbox/") as client:
        assert client.get("/blackbox/-/healthy").text == "Healthy"
        assert "probe_exporter_" in client.get("/blackbox/metrics").text
        page = client.get("/blackbox/")
        assert page.status_code == 200 and 'href="static/style.css"' in page.text  # relative: works below the prefix
        assert client.get("/blackbox/static/style.css").status_code == 200
        target = plain_http_target.removeprefix("http://")
        assert "probe_success 1" in client.get("/blackbox/probe", params={"module": "tcp_connect",
                                                                          "target": target}).text
        root = client.get("/")
        assert root.status_code == 302 and root.headers["location"] == "http://proxy.example/blackbox/"
        assert client.get("/blackbox").headers["location"] == "/blackbox/"
        assert client.get("/metrics").status_code == 404


def test_route_prefix_overrides_the_external_urls_path() -> None:
    with _client(web_external_url="http://proxy.example/outer/", web_route_prefix="/inner") as client:
        assert client.get("/inner/-/healthy").status_code == 200
        assert client.get("/outer/-/healthy").status_code == 404


def test_without_flags_routes_stay_at_the_root() -> None:
    with _client() as client:
        assert client.get("/-/healthy").status_code == 200 and client.get("/").status_code == 200


def test_a_quoted_external_url_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config.check", "--config.file", MODULES, "--web.external-url", '"http://x/"']) == 1
    assert "failed to determine external URL: URL must not begin with quotes" in capsys.readouterr().err


def test_systemd_socket_activation_serves_on_the_passed_socket(tmp_path: Path) -> None:
    activate = shutil.which("systemd-socket-activate")
    assert activate, "systemd-socket-activate is needed (Debian package systemd; .ci/run installs it)"
    port = free_port()
    process = subprocess.Popen([activate, "-l", f"127.0.0.1:{port}", sys.executable, "-m", "probe_exporter",
                                "--config.file", MODULES, "--web.systemd-socket"],
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=5) as response:
                    assert response.read() == b"Healthy"
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "exporter did not come up"
                time.sleep(0.1)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    assert b"Listening on systemd socket" in stderr and f"127.0.0.1:{port}".encode() in stderr


def test_systemd_socket_without_activation_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config.file", MODULES, "--web.systemd-socket"]) == 1
    assert "--web.systemd-socket: no sockets passed by systemd" in capsys.readouterr().err

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from probe_exporter.cli import bind_listener
from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from probe_exporter.web.serve import make_server

MODULES = """modules:
  http_2xx:
    prober: http
    http:
      preferred_ip_protocol: ip4
  http_secret:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      basic_auth: {username: probe, password: hunter2-basic}
      headers:
        Host: configured.example
  tcp_like:
    prober: tcp
"""


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "modules.yml"
    path.write_text(MODULES)
    return path


@pytest.fixture()
def client(config_file: Path) -> Iterator[TestClient]:
    exporter = Exporter(Settings(config_files=[str(config_file)]))
    with TestClient(create_app(exporter)) as test_client:
        yield test_client


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """GET /sleep/SECONDS answers 200 after that long; anything else at once."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/sleep/"):
            time.sleep(float(self.path.rsplit("/", 1)[1]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def slow_http_target() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def running_server(app: FastAPI) -> Iterator[int]:
    """Serve `app` with the real uvicorn server (TLS if its web config says so) on a loopback port."""
    server = make_server(app)
    sock = bind_listener("127.0.0.1:0")  # as the CLI binds (TCP_NODELAY on accepted connections)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()

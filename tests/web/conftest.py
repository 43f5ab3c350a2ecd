from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from probe_exporter.exporter import Exporter, Settings
from probe_exporter.web.app import create_app

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

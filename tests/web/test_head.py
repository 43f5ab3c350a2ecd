"""HEAD answers like GET without a body, on every GET route (blackbox_exporter answers HEAD with 200)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from probe_exporter.exporter import Exporter, Settings
from probe_exporter.web.app import create_app
from tests.web.conftest import running_server

# Headers that differ between two answers to the same request.
_VOLATILE = {"date", "content-length"}
# Pages whose body is the same on two requests in a row: their Content-Length must match GET's too.
_STABLE_BODIES = {"/-/healthy", "/-/ready", "/config", "/static/style.css"}


def _routes(routes: list[Any]) -> Iterator[Route]:
    for route in routes:
        if isinstance(route, Route):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI's include_router keeps the router it included
            yield from _routes(route.original_router.routes)


def _get_paths(client: TestClient) -> list[str]:
    paths = [route.path for route in _routes(client.app.routes)  # type: ignore[attr-defined]
             if route.methods and "GET" in route.methods]
    assert {"/", "/-/healthy", "/-/ready", "/metrics", "/probe", "/config", "/logs", "/snmp"} <= set(paths)
    return paths


def test_head_answers_like_get_without_a_body_on_every_get_route(client: TestClient) -> None:
    for path in _get_paths(client):
        get = client.get(path)
        head = client.head(path)
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        assert ({k: v for k, v in head.headers.items() if k not in _VOLATILE}
                == {k: v for k, v in get.headers.items() if k not in _VOLATILE}), path
        if path in _STABLE_BODIES:
            assert head.headers["content-length"] == str(len(get.content)), path


def test_head_on_reload_is_refused_like_get(client: TestClient) -> None:
    assert client.head("/-/reload").status_code == client.get("/-/reload").status_code == 405


@pytest.mark.parametrize("path", ["/", "/-/healthy", "/-/ready", "/metrics"])
def test_curl_head_gives_200(config_file: Path, path: str) -> None:
    curl = shutil.which("curl")
    assert curl, "curl is missing: .ci/run installs it"
    app = create_app(Exporter(Settings(config_files=[str(config_file)])))
    with running_server(app) as port:
        result = subprocess.run([curl, "-sS", "-I", "--max-time", "10", f"http://127.0.0.1:{port}{path}"],
                                capture_output=True, text=True, check=True)
    assert result.stdout.startswith("HTTP/1.1 200 "), result.stdout

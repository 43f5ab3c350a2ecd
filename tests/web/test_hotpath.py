"""HotPathMiddleware: /probe and /snmp answered before Starlette's router, everything else passed on."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from probe_exporter.web.hotpath import HotPathMiddleware
from tests.support.paths import REPO


async def _passed_on(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse(f"passed on: {scope['method']} {scope['path']}")(scope, receive, send)


async def _endpoint(request: Request) -> Response:
    return PlainTextResponse(f"hot: {request.query_params.get('target')}")


def test_its_paths_and_methods_are_answered_and_the_rest_passed_on() -> None:
    client = TestClient(HotPathMiddleware(_passed_on, {"/x": (frozenset({"GET"}), _endpoint)}))
    assert client.get("/x", params={"target": "a"}).text == "hot: a"
    assert client.post("/x").text == "passed on: POST /x"
    assert client.get("/y").text == "passed on: GET /y"


def test_it_is_innermost_so_security_prefix_and_head_apply_first() -> None:
    app = create_app(Exporter(Settings(config_files=[str(REPO / "modules" / "http.yml")])))
    middleware: list[Any] = app.user_middleware
    assert middleware[-1].cls is HotPathMiddleware
    with TestClient(app) as client:
        head = client.head("/probe", params={"module": "nosuch", "target": "x"})
        assert head.status_code == 400 and head.content == b""
        assert client.post("/snmp").status_code == 405  # the router's answer
        assert client.get("/snmp").text == "'target' parameter must be specified once\n"

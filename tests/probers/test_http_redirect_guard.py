"""The allowlist holds at every hop, and the module's credentials stay with the first origin: real
servers on loopback, on both exchange paths (lean and httpcore)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from probe_exporter.config.module import Module
from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.support.capture_server import CaptureServer
from tests.support.http_probe import probe
from tests.support.http_server import LocalServer, Resp, redirect

TOKEN = "hop-guard-bearer-token-5f1c"


@pytest.fixture()
def outside_host() -> Iterator[CaptureServer]:
    server = CaptureServer("127.0.0.2")
    yield server
    server.close()


@pytest.fixture()
def outside_port() -> Iterator[CaptureServer]:
    """Another port on 127.0.0.1: what the decimal (2130706433) and localhost forms reach."""
    server = CaptureServer("127.0.0.1")
    yield server
    server.close()


def _redirecting(http_server: LocalServer, location: str) -> str:
    return http_server.route(lambda req: redirect(location) if req.path == "/redir" else Resp()) + "/redir"


def _module(http: dict[str, object], allowed: list[str]) -> Module:
    return Module.model_validate({"prober": "http", "timeout": "5s", "http": http, "allowed_targets": allowed})


@pytest.mark.parametrize("form", ["127.0.0.2", "2130706433", "localhost"])
async def test_redirect_outside_allowed_targets_is_never_contacted(http_server: LocalServer, http_path: str,
                                                                   outside_host: CaptureServer,
                                                                   outside_port: CaptureServer, form: str) -> None:
    capture = outside_host if form == "127.0.0.2" else outside_port
    location = f"http://{form}:{capture.port}/cap"
    url = _redirecting(http_server, location)
    module = _module({"bearer_token": TOKEN}, [url])
    result = await probe(url, module=module)
    assert not result.success
    assert f"redirect to {location} is not in allowed_targets" in result.log
    assert result.value("probe_success") == 0
    assert capture.connections == 0 and capture.requests == []
    # the first hop, inside the list, did get the token
    assert [r.header("authorization") for r in http_server.seen(url)] == [f"Bearer {TOKEN}"]


async def test_relative_redirect_out_of_the_prefix_is_refused(http_server: LocalServer, http_path: str) -> None:
    base = http_server.route(lambda req: redirect(req.prefix + "/other") if req.path == "/redir" else Resp())
    module = _module({}, [base + "/redir"])
    result = await probe(base + "/redir", module=module)
    assert not result.success
    assert f"redirect to {base}/other is not in allowed_targets" in result.log
    assert [r.path for r in http_server.seen(base)] == ["/redir"]


async def test_redirect_inside_allowed_targets_is_followed(http_server: LocalServer, http_path: str) -> None:
    base = http_server.route(lambda req: redirect(req.prefix + "/redir/next") if req.path == "/redir" else Resp())
    module = _module({"bearer_token": TOKEN}, [base + "/redir"])
    result = await probe(base + "/redir", module=module)
    assert result.success
    assert [(r.path, r.header("authorization")) for r in http_server.seen(base)] == [
        ("/redir", f"Bearer {TOKEN}"), ("/redir/next", f"Bearer {TOKEN}")]


def _secret_headers() -> dict[str, object]:
    return {"headers": {"Authorization": "Basic dXNlcjpwdw==", "Cookie": "session=abc", "X-Api-Key": "k-123",
                        "Proxy-Authorization": "Basic cHJveHk=", "X-Plain": "kept"},
            "http_headers": {"X-Secret-Header": {"secrets": ["s3cr3t"]}, "X-Shown": {"values": ["shown"]}}}


@pytest.mark.parametrize("http", [{"bearer_token": TOKEN}, {"basic_auth": {"username": "u", "password": TOKEN}},
                                  {"authorization": {"type": "Token", "credentials": TOKEN}}, _secret_headers()],
                         ids=["bearer", "basic", "authorization", "headers"])
async def test_credentials_stay_with_the_first_origin(http_server: LocalServer, http_path: str,
                                                      outside_host: CaptureServer, http: dict[str, object]) -> None:
    url = _redirecting(http_server, f"http://127.0.0.2:{outside_host.port}/cap")
    result = await probe(url, http)
    assert result.success
    (received,) = outside_host.requests
    text = received.decode().lower()
    for leaked in ("authorization:", "cookie:", "x-api-key:", "x-secret-header:", TOKEN.lower(), "s3cr3t"):
        assert leaked not in text
    assert "x-plain: kept" in text or "headers" not in http
    first = http_server.seen(url)[0]
    assert first.header("authorization") is not None


async def test_userinfo_credentials_stay_with_the_first_origin(http_server: LocalServer, http_path: str,
                                                               outside_host: CaptureServer) -> None:
    url = _redirecting(http_server, f"http://127.0.0.2:{outside_host.port}/cap")
    result = await probe(url.replace("http://", f"http://user:{TOKEN}@"))
    assert result.success
    (received,) = outside_host.requests
    assert b"authorization" not in received.lower()


async def test_opt_in_sends_credentials_on(http_server: LocalServer, http_path: str,
                                           outside_host: CaptureServer) -> None:
    url = _redirecting(http_server, f"http://127.0.0.2:{outside_host.port}/cap")
    result = await probe(url, {"bearer_token": TOKEN, "follow_redirects_with_credentials": True})
    assert result.success
    (received,) = outside_host.requests
    assert f"authorization: bearer {TOKEN}".lower() in received.decode().lower()


def test_refused_redirect_through_probe_endpoint(tmp_path: Path, http_server: LocalServer,
                                                 outside_host: CaptureServer) -> None:
    location = f"http://user:pw-9@127.0.0.2:{outside_host.port}/cap"
    url = _redirecting(http_server, location)
    path = tmp_path / "m.yml"
    path.write_text(f"modules:\n  guarded:\n    prober: http\n    http:\n      bearer_token: {TOKEN}\n"
                    f"    allowed_targets: ['{url}']\n")
    with TestClient(create_app(Exporter(Settings(config_files=[str(path)])))) as client:
        response = client.get("/probe", params={"module": "guarded", "target": url, "debug": "true"})
    assert response.status_code == 200
    assert "probe_success 0" in response.text
    masked = f"http://user:<secret>@127.0.0.2:{outside_host.port}/cap"
    assert f"redirect to {masked} is not in allowed_targets" in response.text
    assert "pw-9" not in response.text
    assert outside_host.connections == 0


async def test_oauth2_token_stays_with_the_first_origin(http_server: LocalServer, http_path: str,
                                                        outside_host: CaptureServer) -> None:
    token_body = json.dumps({"access_token": TOKEN, "token_type": "bearer", "expires_in": 3600}).encode()
    token_url = http_server.route(lambda req: Resp(headers=[("Content-Type", "application/json")], body=token_body))
    url = _redirecting(http_server, f"http://127.0.0.2:{outside_host.port}/cap")
    result = await probe(url, {"oauth2": {"client_id": "c", "client_secret": "s", "token_url": token_url}})
    assert result.success, result.log
    assert http_server.seen(url)[0].header("authorization") == f"Bearer {TOKEN}"
    (received,) = outside_host.requests
    assert TOKEN.encode() not in received and b"authorization" not in received.lower()

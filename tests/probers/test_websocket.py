"""The websocket prober against real websocket servers on loopback, plain and TLS (blackbox master's
prober/websocket.go and its test: query_response with ${1}, regex failures, refused upgrades)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Request, Response, ServerConnection, serve

from probe_exporter.config import load_config
from tests.support.http_server import LocalServer, Resp, TLSMaterial
from tests.support.network_probe import ADDRESS_METRICS, ALWAYS, LOOPBACK_V4_HASH, log_text, names, probe, value

WS_METRICS = {"probe_websocket_status_code", "probe_websocket_connection_upgraded",
              "probe_websocket_failed_due_to_regex", "probe_websocket_duration_seconds"}

ServerHandler = Callable[[ServerConnection], Awaitable[None]]


class WSServer:
    """A websocket server of the `websockets` package; remembers what each connection sent."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.received: list[str | bytes] = []
        self.requests: list[Request] = []


@asynccontextmanager
async def ws_server(handler: ServerHandler, *, tls: ssl.SSLContext | None = None,
                    process_request: Any = None) -> AsyncIterator[WSServer]:
    server_box: list[WSServer] = []

    async def serve_one(connection: ServerConnection) -> None:
        assert connection.request is not None
        server_box[0].requests.append(connection.request)
        await handler(connection)

    async with serve(serve_one, "127.0.0.1", 0, ssl=tls, process_request=process_request) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        server_box.append(WSServer(f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/socket"))
        yield server_box[0]


def dialogue(box: list[WSServer]) -> ServerHandler:
    """upstream's test server: send `incoming_test`, expect `outgoing_test`, answer `passed`."""

    async def handler(connection: ServerConnection) -> None:
        await connection.send("incoming_test")
        message = await connection.recv()
        box[0].received.append(message)
        await connection.send("passed" if message == "outgoing_test" else "wrong")
        await connection.wait_closed()

    return handler


async def accept_and_wait(connection: ServerConnection) -> None:
    """Upgrade, then send nothing until the client goes away."""
    await connection.wait_closed()


def ws(**block: object) -> dict[str, object]:
    return {"prober": "websocket", "websocket": {"preferred_ip_protocol": "ip4", **block}}


QUERY = [{"expect": "incoming_(.+)", "send": "outgoing_${1}"}, {"expect": "^passed"}]


async def test_query_response_with_group_expansion_succeeds() -> None:
    box: list[WSServer] = []
    async with ws_server(dialogue(box)) as server:
        box.append(server)
        outcome = await probe(ws(query_response=QUERY), server.url)
    assert outcome.success, log_text(outcome)
    assert server.received == ["outgoing_test"]
    assert value(outcome, "probe_websocket_status_code") == 101
    assert value(outcome, "probe_websocket_connection_upgraded") == 1
    assert value(outcome, "probe_websocket_failed_due_to_regex") == 0
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | WS_METRICS
    assert value(outcome, "probe_ip_protocol") == 4
    assert value(outcome, "probe_ip_addr_hash") == LOOPBACK_V4_HASH
    phases = {phase: value(outcome, "probe_websocket_duration_seconds", phase=phase)
              for phase in ("resolve", "connect", "processing", "transfer")}
    assert all(seconds >= 0 for seconds in phases.values())
    assert phases["transfer"] > 0
    assert server.requests[0].path == "/socket"
    assert server.requests[0].headers["User-Agent"] == "Go-http-client/1.1"


async def test_regexp_that_does_not_match_fails_due_to_regex() -> None:
    box: list[WSServer] = []
    async with ws_server(dialogue(box)) as server:
        box.append(server)
        outcome = await probe(ws(query_response=[QUERY[0], {"expect": "^someotherstring"}]), server.url)
    assert not outcome.success
    assert value(outcome, "probe_websocket_connection_upgraded") == 1
    assert value(outcome, "probe_websocket_failed_due_to_regex") == 1
    assert 'msg="Regexp did not match"' in log_text(outcome)
    assert "line=passed" in log_text(outcome)


async def test_send_without_expect_goes_out_unexpanded() -> None:
    received: list[str | bytes] = []

    async def handler(connection: ServerConnection) -> None:
        received.append(await connection.recv())
        await connection.send("ack")
        await connection.wait_closed()

    async with ws_server(handler) as server:
        outcome = await probe(ws(query_response=[{"send": "hello ${1}"}, {"expect": "^ack$"}]), server.url)
    assert outcome.success, log_text(outcome)
    assert received == ["hello ${1}"]


async def test_fragmented_binary_message_is_matched_whole() -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.send([b"first half, ", b"second half"])  # two frames, one message
        await connection.wait_closed()

    async with ws_server(handler) as server:
        outcome = await probe(ws(query_response=[{"expect": "half, second"}]), server.url)
    assert outcome.success, log_text(outcome)


async def test_plain_http_server_is_not_upgraded(http_server: LocalServer) -> None:
    url = http_server.route(lambda req: Resp(200, body=b"not a websocket\n"))
    outcome = await probe(ws(), url.replace("http://", "ws://"))
    assert not outcome.success
    assert value(outcome, "probe_websocket_status_code") == 200
    assert value(outcome, "probe_websocket_connection_upgraded") == 0
    assert value(outcome, "probe_websocket_failed_due_to_regex") == 0
    assert "websocket: bad handshake" in log_text(outcome)


async def test_refused_upgrade_reports_its_status() -> None:
    async def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(HTTPStatus.FORBIDDEN, "go away\n")

    async with ws_server(dialogue([]), process_request=refuse) as server:
        outcome = await probe(ws(), server.url)
    assert not outcome.success
    assert value(outcome, "probe_websocket_status_code") == 403
    assert value(outcome, "probe_websocket_connection_upgraded") == 0


async def test_closed_port_fails_without_a_status(refused_port: int) -> None:
    outcome = await probe(ws(), f"ws://127.0.0.1:{refused_port}/")
    assert not outcome.success
    assert value(outcome, "probe_websocket_status_code") == 0
    assert "connect" not in {labels.get("phase") for labels in _phase_labels(outcome)}
    assert "connection refused" in log_text(outcome)


async def test_server_that_never_sends_ends_within_the_timeout() -> None:
    async with ws_server(accept_and_wait) as server:
        outcome = await asyncio.wait_for(probe(ws(query_response=[{"expect": "^hello"}]), server.url, timeout=0.5),
                                         timeout=10)
    assert not outcome.success
    assert value(outcome, "probe_websocket_connection_upgraded") == 1
    assert value(outcome, "probe_websocket_failed_due_to_regex") == 1
    assert "Error reading message" in log_text(outcome)
    assert "Timeout reached" in log_text(outcome)


async def test_peer_closing_before_the_expected_message_fails() -> None:
    async def close_at_once(connection: ServerConnection) -> None:
        await connection.close(1001, "bye")

    async with ws_server(close_at_once) as server:
        outcome = await probe(ws(query_response=[{"expect": "^hello"}]), server.url)
    assert not outcome.success
    assert value(outcome, "probe_websocket_failed_due_to_regex") == 1
    assert "1001" in log_text(outcome)


async def test_not_a_websocket_url_is_refused_after_resolving(http_server: LocalServer) -> None:
    outcome = await probe(ws(), http_server.route(lambda req: Resp(200)))
    assert not outcome.success
    assert "malformed ws or wss URL" in log_text(outcome)
    assert value(outcome, "probe_websocket_duration_seconds", phase="resolve") >= 0


async def test_wss_with_the_servers_ca_succeeds(tls_material: TLSMaterial) -> None:
    box: list[WSServer] = []
    async with ws_server(dialogue(box), tls=tls_material.server_context(["http/1.1"])) as server:
        box.append(server)
        outcome = await probe(ws(query_response=QUERY, http_config={"tls_config": {"ca_file": str(
            tls_material.ca_file)}}), server.url)
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_websocket_status_code") == 101


async def test_wss_with_a_certificate_not_trusted_fails(tls_material: TLSMaterial) -> None:
    async with ws_server(dialogue([]), tls=tls_material.server_context(["http/1.1"])) as server:
        outcome = await probe(ws(), server.url)
    assert not outcome.success
    assert value(outcome, "probe_websocket_status_code") == 0
    assert value(outcome, "probe_websocket_connection_upgraded") == 0
    assert "tls: unable to get local issuer certificate" in log_text(outcome)
    assert value(outcome, "probe_websocket_duration_seconds", phase="connect") >= 0


async def test_wss_with_a_wrong_server_name_fails_and_insecure_skip_verify_passes(tls_material: TLSMaterial) -> None:
    async with ws_server(accept_and_wait, tls=tls_material.server_context(["http/1.1"])) as server:
        wrong = await probe(ws(http_config={"tls_config": {"ca_file": str(tls_material.ca_file),
                                                           "server_name": "elsewhere.example"}}), server.url)
        skipped = await probe(ws(http_config={"tls_config": {"insecure_skip_verify": True}}), server.url)
    assert not wrong.success
    assert "Hostname mismatch" in log_text(wrong)
    assert skipped.success, log_text(skipped)


async def test_credentials_and_headers_reach_the_server(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")

    async with ws_server(accept_and_wait) as server:
        basic = await probe(ws(http_config={"basic_auth": {"username": "user", "password": "pa55word"}},
                               headers={"x-flag": {"values": ["on", "two"], "secrets": ["s3cret-value"],
                                                   "files": [str(token_file)]}}), server.url)
        bearer = await probe(ws(http_config={"authorization": {"credentials": "tok3n-value"}}), server.url)
    assert basic.success, log_text(basic)
    assert bearer.success, log_text(bearer)
    first, second = server.requests
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(b"user:pa55word").decode()
    assert first.headers.get_all("X-Flag") == ["on", "two", "s3cret-value", "from-a-file"]
    assert second.headers["Authorization"] == "Bearer tok3n-value"
    assert "s3cret-value" not in log_text(basic)


async def test_unreadable_header_file_is_logged_and_left_out(tmp_path: Path) -> None:
    async with ws_server(accept_and_wait) as server:
        outcome = await probe(ws(headers={"X-Token": {"files": [str(tmp_path / "missing")]}}), server.url)
    assert outcome.success
    assert "Unable to read header file" in log_text(outcome)
    assert "X-Token" not in server.requests[0].headers


async def test_handshake_header_in_config_is_refused_like_gorilla() -> None:
    async with ws_server(dialogue([])) as server:
        outcome = await probe(ws(headers={"Upgrade": {"values": ["h2c"]}}), server.url)
    assert not outcome.success
    assert "duplicate header not allowed: Upgrade" in log_text(outcome)


async def test_preferred_ip4_without_fallback_resolves_localhost() -> None:
    async with ws_server(accept_and_wait) as server:
        outcome = await probe(ws(ip_protocol_fallback=False), server.url.replace("127.0.0.1", "localhost"))
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_ip_protocol") == 4
    assert server.requests[0].headers["Host"].startswith("localhost:")


def test_websocket_modules_load_and_bad_ones_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("modules:\n  ws:\n    prober: websocket\n    websocket:\n      http_config:\n"
                    "        tls_config:\n          insecure_skip_verify: true\n        basic_auth:\n"
                    "          username: myuser\n          password: mypassword\n")
    module = load_config([str(good)]).modules["ws"]
    assert module.websocket.http_config.tls_config.insecure_skip_verify
    assert module.websocket.http_config.basic_auth is not None
    assert module.websocket.http_config.basic_auth.username == "myuser"
    assert module.websocket.ip_protocol_fallback is True
    bad = tmp_path / "bad.yml"
    bad.write_text("modules:\n  ws:\n    prober: websocket\n    websocket:\n      query_response:\n"
                   "        - expect: ':['\n")
    try:
        load_config([str(bad)])
    except Exception as err:
        assert "Could not compile regular expression" in str(err)
        assert "bad.yml:6" in str(err)
    else:
        raise AssertionError("a bad websocket regexp loaded")


def _phase_labels(outcome: Any) -> list[dict[str, str]]:
    from tests.support.network_probe import label_sets

    return label_sets(outcome, "probe_websocket_duration_seconds")


async def test_unparsable_target_fails_before_any_metric() -> None:
    outcome = await probe(ws(), "ws://[::1/socket")
    assert not outcome.success
    assert names(outcome) == ALWAYS
    assert "Could not parse target URL" in log_text(outcome)


async def test_server_that_never_answers_the_tls_handshake_ends_within_the_timeout() -> None:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, then say nothing

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        outcome = await asyncio.wait_for(probe(ws(http_config={"tls_config": {"insecure_skip_verify": True}}),
                                               f"wss://127.0.0.1:{port}/", timeout=0.5), timeout=10)
    finally:
        server.close()
    assert not outcome.success
    assert value(outcome, "probe_websocket_connection_upgraded") == 0
    assert "i/o timeout (probe deadline)" in log_text(outcome)
    assert value(outcome, "probe_websocket_duration_seconds", phase="processing") > 0


async def test_basic_auth_from_files(tmp_path: Path) -> None:
    (tmp_path / "user").write_text("user_from_file\n")
    (tmp_path / "password").write_text("password_from_file\n")
    async with ws_server(accept_and_wait) as server:
        outcome = await probe(ws(http_config={"basic_auth": {"username_file": str(tmp_path / "user"),
                                                             "password_file": str(tmp_path / "password")}}),
                              server.url)
    assert outcome.success, log_text(outcome)
    expected = "Basic " + base64.b64encode(b"user_from_file:password_from_file").decode()
    assert server.requests[0].headers["Authorization"] == expected

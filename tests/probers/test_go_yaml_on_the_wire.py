"""Go's yaml scalar rules, seen by real servers: a header written `X-Flag: on` in a config file is
sent as `on` (not `True`), by the http and the websocket prober."""

from __future__ import annotations

from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve

from probe_exporter.config import load_config
from probe_exporter.pipeline import run_probe
from tests.support.http_server import LocalServer, Resp


async def test_http_header_on_is_sent_as_on(http_server: LocalServer, tmp_path: Path) -> None:
    url = http_server.route(lambda req: Resp(200))
    path = tmp_path / "blackbox.yml"
    path.write_text("modules:\n  flag:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\n"
                    "      headers:\n        X-Flag: on\n        X-Version: 1.10\n")
    config = load_config([str(path)])
    outcome = await run_probe("flag", config.modules["flag"], url, 5.0, config=config)
    assert outcome.success, outcome.log.text()
    (request,) = http_server.seen(url)
    assert request.header_list("X-Flag") == ["on"]
    assert request.header_list("X-Version") == ["1.10"]


async def test_websocket_header_on_is_sent_as_on(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    async def accept(connection: ServerConnection) -> None:
        assert connection.request is not None
        seen.append(connection.request.headers.get_all("X-Flag"))
        await connection.wait_closed()

    async with serve(accept, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        path = tmp_path / "blackbox.yml"
        path.write_text("modules:\n  flag:\n    prober: websocket\n    websocket:\n      preferred_ip_protocol: ip4\n"
                        "      headers:\n        X-Flag:\n          values: [on, off]\n")
        config = load_config([str(path)])
        outcome = await run_probe("flag", config.modules["flag"], f"ws://127.0.0.1:{port}/", 5.0, config=config)
    assert outcome.success, outcome.log.text()
    assert seen == [["on", "off"]]

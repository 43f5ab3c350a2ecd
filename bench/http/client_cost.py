"""Client CPU of one HTTP/1.1 exchange: the HTTP prober's httpcore path against asyncio + httptools.

    .venv/bin/python bench/http/client_cost.py [--requests 4000] [--rounds 2]

Starts nginx as bench/http/run.py does and, in this process on uvloop, makes `--requests` sequential
GET requests on fresh connections (as probes do), timing this process's CPU (time.process_time):
- `httpcore`: the prober's connection (probers.http_client.HopConnection on probers.http_stream's
  asyncio backend, with a trace callback as the prober passes for its phase timings);
- `asyncio + httptools`: asyncio streams and httptools' response parser (the parser uvicorn uses),
  the floor for the same exchange in Python.
The difference is what the HTTP/1.1 exchange through httpcore and h11 costs per probe (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpcore
import httptools
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _procs import nginx_target  # the helpers sit beside this script, not in a package

from probe_exporter.probers.http_client import HopConnection
from probe_exporter.probers.http_stream import AsyncioBackend

HEADERS = [(b"Host", b"127.0.0.1"), (b"User-Agent", b"Blackbox-Exporter/0.28.0"), (b"Connection", b"close")]


async def _trace(event: str, info: dict[str, Any]) -> None:
    return None


async def via_httpcore(port: int, requests: int) -> None:
    backend = AsyncioBackend()
    origin = httpcore.Origin(b"http", b"127.0.0.1", port)
    url = httpcore.URL(scheme=b"http", host=b"127.0.0.1", port=port, target=b"/")
    for _ in range(requests):
        connection = HopConnection(origin=origin, network_backend=backend)
        response = await connection.handle_async_request(
            httpcore.Request(b"GET", url, headers=HEADERS, extensions={"trace": _trace}))
        async for _chunk in response.stream:  # type: ignore[union-attr]
            pass
        await response.aclose()
        await connection.aclose()


class _Response:
    def __init__(self) -> None:
        self.complete = False
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


async def via_httptools(port: int, requests: int) -> None:
    request = b"GET / HTTP/1.1\r\n" + b"".join(name + b": " + value + b"\r\n" for name, value in HEADERS) + b"\r\n"
    for _ in range(requests):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        response = _Response()
        parser = httptools.HttpResponseParser(response)
        while not response.complete:
            data = await reader.read(65536)
            if not data:
                break
            parser.feed_data(data)
        writer.close()


async def measure(port: int, requests: int, rounds: int) -> None:
    clients: list[tuple[str, Callable[[int, int], Awaitable[None]]]] = [
        ("httpcore (the prober's path)", via_httpcore), ("asyncio + httptools", via_httptools)]
    for _ in range(rounds):
        for name, client in clients:
            await client(port, 50)  # warm-up
            start = time.process_time()
            await client(port, requests)
            print(f"{name}: {1000 * (time.process_time() - start) / requests:.3f} ms CPU per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, nginx_target(Path(workdir)) as nginx:
        port = int(nginx.url.rsplit(":", 1)[1])
        uvloop.run(measure(port, args.requests, args.rounds))


if __name__ == "__main__":
    main()

"""Client CPU of one HTTP/1.1 exchange: the HTTP prober's lean exchange, its httpcore path, and the floor.

    .venv/bin/python bench/http/client_cost.py [--requests 4000] [--rounds 2]

Starts nginx as bench/http/run.py does and, in this process on uvloop, makes `--requests` sequential
GET requests on fresh connections (as probes do), timing this process's CPU (time.process_time):
- `lean`: probers.http.lean.lean_exchange, with the Trace the prober passes for its phase timings and
  the body read through the response, as the prober reads it;
- `httpcore`: the prober's httpcore path (httpcore.AsyncHTTPConnection on probers.http.stream's asyncio
  backend, with the trace callback), which proxied modules take;
- `asyncio + httptools`: asyncio streams and httptools' response parser, no timings, no checks: the
  floor for the same exchange in Python.
The target for `lean` is 0.15 ms per exchange (docs/probers/http.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpcore
import httptools
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _procs import nginx_target  # the helpers sit beside this script, not in a package

from probe_exporter.probers.http.exchange import HopRequest
from probe_exporter.probers.http.lean import lean_exchange
from probe_exporter.probers.http.stream import AsyncioBackend
from probe_exporter.probers.http.timings import Trace

HEADERS = [(b"Host", b"127.0.0.1"), (b"User-Agent", b"Blackbox-Exporter/0.28.0"), (b"Connection", b"close")]


async def via_lean(port: int, requests: int) -> None:
    for _ in range(requests):
        hop = HopRequest("GET", "http", "127.0.0.1", port, "/", list(HEADERS), None, False, "127.0.0.1",
                         Trace(tls=False))
        response = await lean_exchange(hop, None)
        async for _chunk in response.body():
            pass
        await response.aclose()


async def via_httpcore(port: int, requests: int) -> None:
    backend = AsyncioBackend()
    origin = httpcore.Origin(b"http", b"127.0.0.1", port)
    url = httpcore.URL(scheme=b"http", host=b"127.0.0.1", port=port, target=b"/")
    for _ in range(requests):
        connection = httpcore.AsyncHTTPConnection(origin=origin, network_backend=backend)
        response = await connection.handle_async_request(
            httpcore.Request(b"GET", url, headers=HEADERS, extensions={"trace": Trace(tls=False)}))
        async for _chunk in response.aiter_stream():
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
        ("lean (the prober's HTTP/1.1 path)", via_lean), ("httpcore (the proxy path)", via_httpcore),
        ("asyncio + httptools (floor)", via_httptools)]
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

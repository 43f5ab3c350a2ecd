"""The storm: 3,000 probes in flight to a healthy target that answers after 5 s, and ten fast probes
sent meanwhile, side by side with Debian's blackbox_exporter in the same run.

Both exporters run with their default flags, on loopback and ephemeral ports, started with a soft
open-files limit of 1024 (what systemd gives a service). Reported per exporter: the share of the storm's
probes that answered 200 with probe_success 1, how the rest failed, how long the storm took to be
wholly in flight (the target holding all of its requests), the latency of the ten fast probes sent
after that (client side, timed by curl in its own process from connecting to the whole answer) and of
one sent 1 s in, while the burst may still be arriving, and the peak RSS (VmHWM).

    .venv/bin/python bench/scale/storm.py [--probes 3000] [--fast 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))

from _procs import free_port, stop, wait_http  # also puts the repo on sys.path

from bench.proctree import cpu_seconds, status_kib

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"
BLACKBOX = Path("/usr/bin/prometheus-blackbox-exporter")
SOFT_OPEN_FILES = 1024
SLOW_SECONDS = 5.0
# The ten fast probes start once the target holds the whole storm, or this long after it began (they
# must end before the storm's answers come back, SLOW_SECONDS after their requests arrived).
IN_FLIGHT_WAIT = 3.0

MODULES = """modules:
  http_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
"""

# The target, in a process of its own (argv: port, seconds): /slow answers 200 after that many
# seconds, /inflight with how many /slow requests it holds, anything else at once. bench/scale/open_loop.py
# runs it too. A protocol on uvloop, like the client below: the load generators share the two cores with
# the exporter under test, so they cost as little CPU per probe as asyncio allows.
TARGET = """
import asyncio, sys
import uvloop

SLOW = float(sys.argv[2])
holding = 0

class Handler(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.head, self.held = transport, b"", False

    def data_received(self, data):
        self.head += data
        if b"\\r\\n\\r\\n" not in self.head or self.transport.is_closing():
            return
        global holding
        if b" /slow" in self.head[:200]:
            holding += 1
            self.held = True
            asyncio.get_running_loop().call_later(SLOW, self.answer, b"ok\\n")
        else:
            self.answer(str(holding).encode() if b" /inflight" in self.head[:200] else b"ok\\n")

    def answer(self, body):
        self.release()
        if not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n"
                                 % len(body) + body)
            self.transport.close()

    def release(self):
        global holding
        if self.held:
            self.held = False
            holding -= 1

    def connection_lost(self, exc):
        self.release()

async def main():
    server = await asyncio.get_running_loop().create_server(Handler, "127.0.0.1", int(sys.argv[1]), backlog=8192)
    async with server:
        await server.serve_forever()

uvloop.install()
asyncio.run(main())
"""


def _systemd_like_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT_OPEN_FILES, hard))


@contextlib.contextmanager
def started(argv: list[str], health_url: str, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_systemd_like_limit,
                                   cwd=REPO)
    try:
        wait_http(health_url, deadline=30.0)
        yield process
    finally:
        stop(process, timeout=15)


class _Answer(asyncio.Protocol):
    """One HTTP/1.0 exchange: the request written on connect, the answer gathered until the server closes."""

    def __init__(self, request: bytes, done: asyncio.Future[bytes]) -> None:
        self.request, self.done, self.chunks = request, done, list[bytes]()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(b"".join(self.chunks))


async def get(port: int, path: str) -> tuple[int, bytes]:
    """One HTTP/1.0 GET (no keep-alive): (status, body); status 0 when the connection failed."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode()
    try:
        await loop.create_connection(lambda: _Answer(request, done), "127.0.0.1", port)
    except OSError:
        return 0, b""
    answer = await done
    head, _, body = answer.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), body
    except (IndexError, ValueError):
        return 0, b""


def verdict(status: int, body: bytes) -> str:
    if status == 0:
        return "connection failed"
    if status != 200:
        return f"HTTP {status}"
    return "success" if b"\nprobe_success 1\n" in b"\n" + body else "probe_success 0"


def fast_probe(url: str) -> tuple[float, str]:
    """One probe timed by curl in its own process, so the storm client's event loop is not measured."""
    out = subprocess.run(["curl", "-s", "-o", "/dev/stderr", "-w", "%{http_code} %{time_total}", url],
                         capture_output=True, text=True, timeout=30)
    status, seconds = out.stdout.split()
    return float(seconds), verdict(int(status), out.stderr.encode())


async def until_in_flight(target_port: int, probes: int, started: float) -> tuple[float, int]:
    """Seconds from the storm's start until the target holds all of its requests (at most IN_FLIGHT_WAIT),
    and how many it held then."""
    loop = asyncio.get_running_loop()
    held = 0
    while loop.time() - started < IN_FLIGHT_WAIT:
        status, body = await get(target_port, "/inflight")
        held = int(body) if status == 200 else 0
        if held >= probes:
            break
        await asyncio.sleep(0.02)
    return loop.time() - started, held


async def storm(port: int, target_port: int, probes: int, fast: int) -> dict[str, object]:
    slow_path = f"/probe?module=http_2xx&target=http://127.0.0.1:{target_port}/slow"
    fast_url = f"http://127.0.0.1:{port}/probe?module=http_2xx&target=http://127.0.0.1:{target_port}/fast"
    started = asyncio.get_running_loop().time()
    storm_tasks = [asyncio.create_task(get(port, slow_path)) for _ in range(probes)]
    await asyncio.sleep(1.0)
    # One probe while the burst may still be arriving: it waits behind what is being accepted and started.
    burst_latency, burst_verdict = await asyncio.to_thread(fast_probe, fast_url)
    in_flight_after, held = await until_in_flight(target_port, probes, started)
    fast_results: list[tuple[float, str]] = []  # the ten, sent while the whole storm is in flight
    for _ in range(fast):
        fast_results.append(await asyncio.to_thread(fast_probe, fast_url))
        await asyncio.sleep(0.2)
    outcomes = Counter(verdict(*result) for result in await asyncio.gather(*storm_tasks))
    latencies = [latency for latency, _ in fast_results]
    return {"storm": outcomes, "success_share": outcomes["success"] / probes,
            "in_flight_after_s": in_flight_after, "held": held,
            "burst_ms": burst_latency * 1000, "burst_ok": burst_verdict == "success",
            "fast_ok": sum(1 for _, v in fast_results if v == "success"),
            "fast_median_ms": statistics.median(latencies) * 1000, "fast_max_ms": max(latencies) * 1000,
            "fast_ms": [round(latency * 1000, 1) for latency in latencies]}


def run_one(name: str, argv: list[str], port: int, target_port: int, workdir: Path, probes: int,
            fast: int) -> dict[str, object]:
    with started(argv, f"http://127.0.0.1:{port}/-/healthy", workdir / f"{name}.log") as process:
        # Warm both up the same way: one probe, so imports and first connections are not in the storm.
        asyncio.run(get(port, f"/probe?module=http_2xx&target=http://127.0.0.1:{target_port}/fast"))
        cpu_before = cpu_seconds(process.pid)
        result = asyncio.run(storm(port, target_port, probes, fast))
        result["cpu_seconds"] = cpu_seconds(process.pid) - cpu_before
        result["peak_rss_mib"] = status_kib(process.pid, "VmHWM") / 1024  # an upper bound
    # Why probes failed, by the exporter's own account (probe_exporter logs one line per failure).
    reasons = Counter(line.split("reason=", 1)[1][:90] for line in (workdir / f"{name}.log").read_text().splitlines()
                      if 'msg="Probe failed"' in line and "reason=" in line)
    result["failure_reasons"] = reasons.most_common(3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=3000)
    parser.add_argument("--fast", type=int, default=10)
    args = parser.parse_args()
    uvloop.install()  # the load generator's own CPU per probe, as low as asyncio allows
    if not BLACKBOX.exists():
        sys.exit(f"{BLACKBOX} not found: apt-get install prometheus-blackbox-exporter")
    # The client holds every storm connection open at once.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        modules = workdir / "blackbox.yml"
        modules.write_text(MODULES)
        target_port = free_port()
        target = subprocess.Popen([sys.executable, "-c", TARGET, str(target_port), str(SLOW_SECONDS)])
        try:
            wait_http(f"http://127.0.0.1:{target_port}/fast")
            results = {}
            port = free_port()
            results["blackbox_exporter"] = run_one(
                "blackbox", [str(BLACKBOX), f"--config.file={modules}", f"--web.listen-address=127.0.0.1:{port}"],
                port, target_port, workdir, args.probes, args.fast)
            port = free_port()
            results["probe_exporter"] = run_one(
                "probe_exporter", [str(PYTHON), "-m", "probe_exporter", f"--config.file={modules}",
                                   f"--web.listen-address=127.0.0.1:{port}"],
                port, target_port, workdir, args.probes, args.fast)
        finally:
            target.terminate()
            target.wait()
    print(f"{args.probes} probes to a target answering after {SLOW_SECONDS:g}s, {args.fast} fast probes meanwhile, "
          f"exporters started with soft open-files {SOFT_OPEN_FILES}")
    for name, result in results.items():
        print(f"{name:18} success {result['success_share']:.2%} {dict(result['storm'])}  "  # type: ignore[call-overload]
              f"fast ok {result['fast_ok']}/{args.fast} median {result['fast_median_ms']:.1f} ms "
              f"max {result['fast_max_ms']:.1f} ms  peak RSS {result['peak_rss_mib']:.0f} MiB  "
              f"CPU {result['cpu_seconds']:.2f} s")
        print(f"{'':18} fast probes, in order (ms): {result['fast_ms']}")
        print(f"{'':18} whole storm in flight after {result['in_flight_after_s']:.2f} s (target held "
              f"{result['held']}); the probe sent 1 s in, during the burst: {result['burst_ms']:.1f} ms"
              f"{'' if result['burst_ok'] else ' (failed)'}")
        if result["failure_reasons"]:
            print(f"{'':18} failure reasons: {result['failure_reasons']}")


if __name__ == "__main__":
    main()

"""The storm: 3,000 probes in flight to a healthy target that answers after 5 s, and ten fast probes
sent meanwhile, side by side with Debian's blackbox_exporter in the same run.

Both exporters run with their default flags, on loopback and ephemeral ports, started with a soft
open-files limit of 1024 (what systemd gives a service). Reported per exporter: the share of the storm's
probes that answered 200 with probe_success 1, how the rest failed, the fast probes' latency (client
side, timed by curl in its own process from connecting to the whole answer) and the peak RSS (VmHWM).

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))

from _procs import free_port, stop, wait_http  # also puts the repo on sys.path

from bench.proctree import cpu_seconds, status_kib

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"
BLACKBOX = Path("/usr/bin/prometheus-blackbox-exporter")
SOFT_OPEN_FILES = 1024
SLOW_SECONDS = 5.0

MODULES = """modules:
  http_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
"""

# The target, in a process of its own (argv: port, seconds): /slow answers 200 after that many
# seconds, anything else at once. bench/scale/open_loop.py runs it too.
TARGET = """
import asyncio, sys

async def handle(reader, writer):
    try:
        line = await reader.readline()
        while (await reader.readline()) not in (b"\\r\\n", b""):
            pass
        if b" /slow" in line:
            await asyncio.sleep(float(sys.argv[2]))
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\nConnection: close\\r\\n\\r\\nok\\n")
        await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=8192)
    async with server:
        await server.serve_forever()

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


async def get(port: int, path: str) -> tuple[int, bytes]:
    """One HTTP/1.0 GET (no keep-alive): (status, body); status 0 when the connection failed."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0, b""
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()
    except OSError:
        return 0, b""
    finally:
        writer.close()
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


async def storm(port: int, target_port: int, probes: int, fast: int) -> dict[str, object]:
    slow_path = f"/probe?module=http_2xx&target=http://127.0.0.1:{target_port}/slow"
    fast_url = f"http://127.0.0.1:{port}/probe?module=http_2xx&target=http://127.0.0.1:{target_port}/fast"
    storm_tasks = [asyncio.create_task(get(port, slow_path)) for _ in range(probes)]
    await asyncio.sleep(1.0)  # the storm is in flight
    fast_results: list[tuple[float, str]] = []
    for _ in range(fast):
        fast_results.append(await asyncio.to_thread(fast_probe, fast_url))
        await asyncio.sleep(0.2)
    outcomes = Counter(verdict(*result) for result in await asyncio.gather(*storm_tasks))
    latencies = [latency for latency, _ in fast_results]
    return {"storm": outcomes, "success_share": outcomes["success"] / probes,
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
        if result["failure_reasons"]:
            print(f"{'':18} failure reasons: {result['failure_reasons']}")


if __name__ == "__main__":
    main()

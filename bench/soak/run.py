"""Soak benchmark: every prober kind mixed, high concurrency, some targets dead or hanging.

Starts local targets (HTTP, a hanging TCP server, a closed port, snmpsim when installed, the SQLite demo
and PostgreSQL when reachable), one probe_exporter process, and a load generator in a separate process
that keeps `--concurrency` requests in flight for `--duration` seconds. Every interval it prints requests,
errors, requests over their deadline, p50/p99 latency and the exporter's RSS; at the end, whether RSS
stayed flat after warm-up.

    .venv/bin/python bench/soak/run.py                      # 10 minutes at concurrency 200
    .venv/bin/python bench/soak/run.py --duration 60 --concurrency 50

Loopback only; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import proctree  # noqa: E402
from tests.probers.snmp import agents, recordings  # noqa: E402

SCRAPE_TIMEOUT = 5.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- local targets ----------------------------------------------------------------------------------

async def _http_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        body = b"soak ok\n"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.sleep(3600)  # accepts and never answers
    finally:
        writer.close()


def start_targets() -> dict[str, int]:
    ports = {"http": free_port(), "hang": free_port(), "dead": free_port()}
    ready = threading.Event()

    def serve() -> None:
        async def main() -> None:
            await asyncio.start_server(_http_ok, "127.0.0.1", ports["http"], backlog=1024)
            await asyncio.start_server(_hang, "127.0.0.1", ports["hang"], backlog=1024)
            ready.set()
            await asyncio.Event().wait()

        asyncio.run(main())

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(5)
    return ports


def start_snmpsim(stack: contextlib.ExitStack, tmp: Path) -> int:
    """snmpsim with the recorded Cisco switch when snmpsim and the recording are installed; its port, or 0."""
    if not agents.SNMPSIM.exists() or not recordings.CISCO_16_SWITCH_GZ.exists():
        return 0
    target = stack.enter_context(agents.running_snmpsim(tmp / "snmpsim"))
    return int(target.rsplit(":", 1)[1])


def postgres_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return True
    except OSError:
        return False


# --- the exporter -----------------------------------------------------------------------------------

def write_config(tmp: Path, snmp_port: int) -> Path:
    path = tmp / "soak.yml"
    lines = ["auths:", "  soak_community:", "    version: 2", "    community: cisco_16_switch", "modules:",
             "  soak_http:", "    prober: http", "    http: {preferred_ip_protocol: ip4}",
             "  soak_tcp:", "    prober: tcp", "    tcp: {preferred_ip_protocol: ip4}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def targets(ports: dict[str, int], snmp_port: int) -> list[tuple[str, dict[str, str]]]:
    chosen = [
        ("http ok", {"module": "soak_http", "target": f"http://127.0.0.1:{ports['http']}/"}),
        ("http ok", {"module": "soak_http", "target": f"http://127.0.0.1:{ports['http']}/"}),
        ("http dead", {"module": "soak_http", "target": f"http://127.0.0.1:{ports['dead']}/"}),
        ("http hanging", {"module": "soak_http", "target": f"http://127.0.0.1:{ports['hang']}/"}),
        ("tcp ok", {"module": "soak_tcp", "target": f"127.0.0.1:{ports['http']}"}),
        ("tcp hanging", {"module": "ssh_banner", "target": f"127.0.0.1:{ports['hang']}"}),
        ("icmp", {"module": "icmp", "target": "127.0.0.1"}),
        ("sqlite", {"module": "sqlite_demo", "target": "demo"}),
    ]
    if snmp_port:
        chosen.append(("snmp if_mib", {"module": "if_mib", "auth": "soak_community",
                                       "target": f"127.0.0.1:{snmp_port}"}))
        chosen.append(("snmp dead", {"module": "if_mib", "auth": "soak_community",
                                     "target": f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"}))
    if postgres_up():
        chosen.append(("postgresql", {"module": "postgresql", "target": "127.0.0.1:5432"}))
    return chosen


def rss_mib(pid: int) -> float:
    """RSS of the exporter and its worker processes (--web.workers), in MiB."""
    return proctree.status_kib(pid, "VmRSS") / 1024


# --- the load generator (its own process, so its CPU is not the exporter's) ---------------------------

async def loadgen(base: str, plan: list[tuple[str, dict[str, str]]], concurrency: int, duration: float,
                  interval: float) -> None:
    """Raw HTTP/1.0 requests on asyncio streams: a Python HTTP client (httpx) parsing 200 KB SNMP pages at
    this concurrency needs more CPU than the exporter, and its own queueing would be counted as latency."""
    from urllib.parse import urlencode, urlsplit

    address = urlsplit(base)
    requests = [(f"GET /probe?{urlencode(params)} HTTP/1.0\r\nHost: {address.netloc}\r\n"
                 f"X-Prometheus-Scrape-Timeout-Seconds: {SCRAPE_TIMEOUT}\r\n\r\n").encode() for _, params in plan]
    stop_at = time.monotonic() + duration
    latencies: list[float] = []
    counts = {"requests": 0, "errors": 0, "over_deadline": 0}

    async def one(request: bytes) -> bool:
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        try:
            writer.write(request)
            response = await reader.read()  # HTTP/1.0: the server closes after the body
        finally:
            writer.close()
        return response.startswith(b"HTTP/1.1 200") and b"\nprobe_success " in response

    async def worker(index: int) -> None:
        position = index
        while time.monotonic() < stop_at:
            request = requests[position % len(requests)]
            position += 1
            start = time.monotonic()
            try:
                ok = await asyncio.wait_for(one(request), SCRAPE_TIMEOUT * 3)
            except (OSError, TimeoutError):
                ok = False
            elapsed = time.monotonic() - start
            latencies.append(elapsed)
            counts["requests"] += 1
            counts["errors"] += not ok
            counts["over_deadline"] += elapsed > SCRAPE_TIMEOUT

    async def reporter() -> None:
        while time.monotonic() < stop_at:
            await asyncio.sleep(interval)
            window = sorted(latencies)
            latencies.clear()
            p50 = statistics.median(window) if window else 0.0
            p99 = window[int(len(window) * 0.99) - 1] if len(window) >= 100 else (window[-1] if window else 0.0)
            print(json.dumps({**counts, "p50": p50, "p99": p99, "window": len(window)}), flush=True)
            counts.update(requests=0, errors=0, over_deadline=0)

    await asyncio.gather(reporter(), *(worker(i) for i in range(concurrency)))


# --- main ---------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=60, help="seconds before RSS is expected to be flat")
    parser.add_argument("--exporter-arg", action="append", default=[], metavar="ARG",
                        help="extra probe-exporter flag, e.g. --exporter-arg=--web.workers=2")
    parser.add_argument("--loadgen", nargs=3, metavar=("BASE", "PLAN_JSON", "UNUSED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        plan = json.loads(args.loadgen[1])
        asyncio.run(loadgen(args.loadgen[0], plan, args.concurrency, args.duration, args.interval))
        return 0

    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as agents_running:
        tmp = Path(tmp_name)
        (tmp / "snmpsim").mkdir()
        ports = start_targets()
        snmp_port = start_snmpsim(agents_running, tmp)
        config = write_config(tmp, snmp_port)
        port = free_port()
        exporter = subprocess.Popen(
            [sys.executable, "-m", "probe_exporter", "--config.file", str(REPO / "modules" / "*.yml"),
             "--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "error",
             *args.exporter_arg],
            cwd=REPO)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            plan = targets(ports, snmp_port)
            print(f"targets: {', '.join(name for name, _ in plan)}")
            print(f"concurrency {args.concurrency}, {args.duration:.0f} s, scrape timeout {SCRAPE_TIMEOUT} s")
            print(f"idle RSS {rss_mib(exporter.pid):.1f} MiB\n")
            print("| t (s) | requests | errors | over deadline | p50 (s) | p99 (s) | RSS (MiB) |")
            print("|---:|---:|---:|---:|---:|---:|---:|")
            generator = subprocess.Popen(
                [sys.executable, __file__, "--loadgen", base, json.dumps(plan), "-", "--duration", str(args.duration),
                 "--concurrency", str(args.concurrency), "--interval", str(args.interval)],
                stdout=subprocess.PIPE, text=True)
            start = time.monotonic()
            rss_samples: list[tuple[float, float]] = []
            totals = {"requests": 0, "errors": 0, "over_deadline": 0}
            assert generator.stdout is not None
            for line in generator.stdout:
                row = json.loads(line)
                elapsed = time.monotonic() - start
                rss = rss_mib(exporter.pid)
                rss_samples.append((elapsed, rss))
                for key in totals:
                    totals[key] += row[key]
                print(f"| {elapsed:.0f} | {row['requests']} | {row['errors']} | {row['over_deadline']} | "
                      f"{row['p50']:.3f} | {row['p99']:.3f} | {rss:.1f} |", flush=True)
            generator.wait()
            after_warmup = [rss for t, rss in rss_samples if t >= args.warmup]
            print(f"\ntotal: {totals['requests']} requests, {totals['errors']} errors, "
                  f"{totals['over_deadline']} over the deadline")
            if len(after_warmup) >= 2:
                growth = after_warmup[-1] - after_warmup[0]
                print(f"RSS after warm-up: {after_warmup[0]:.1f} -> {after_warmup[-1]:.1f} MiB "
                      f"({growth:+.1f} MiB; flat means within a few MiB)")
            return 0 if totals["errors"] == 0 and totals["over_deadline"] == 0 else 1
        finally:
            exporter.send_signal(signal.SIGTERM)
            exporter.wait(10)


if __name__ == "__main__":
    raise SystemExit(main())

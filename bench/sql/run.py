"""SQL probe cost against the local PostgreSQL: overhead over the driver, and probes/s under load.

    .venv/bin/python bench/sql/run.py [--samples 300] [--duration 10] [--concurrency 10,50]

1. Driver baseline, in this process with psycopg 3 (async), sequentially: a fresh connection +
   `SELECT 1` + close (what one probe does on the wire), and `SELECT 1` alone on an open connection.
2. probe_exporter runs as its own process (`python -m probe_exporter`) with a module whose collector
   holds that one query; the same number of sequential /probe requests (keep-alive HTTP client)
   gives the probe latency. Overhead = probe p50 - baseline (connect+query+close) p50: HTTP, config
   lookup, target check, limits, row mapping and exposition.
3. Throughput: wrk drives /probe at each concurrency (bench/http/report.lua counts probes that did not
   return probe_success 1), for a one-query module and for the shipped 10-query postgresql module.

Prints a Markdown table, also written to bench/results/sql.md. Needs PostgreSQL on 127.0.0.1:5432
(trust auth, database test) and Debian's wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))

from _procs import REPO, probe_exporter  # the HTTP benchmark's process helpers

LUA_SCRIPT = REPO / "bench" / "http" / "report.lua"
RESULTS = REPO / "bench" / "results" / "sql.md"

MODULE = """  {name}:
    prober: sql
    timeout: 10s
    sql:
      driver: postgresql
      database: test
      auth: {{username: postgres}}
      target_allow: [127.0.0.1]
      max_concurrency_per_target: 64
      max_concurrency: 64
      collector_files: [{collectors}]
"""


def modules_file() -> str:
    """pg_one (the one-query collector) and pg_shipped (the shipped postgresql collector)."""
    shipped = REPO / "modules" / "sql" / "postgresql.collector.yml"
    return ("modules:\n" + MODULE.format(name="pg_one", collectors="one.collector.yml")
            + MODULE.format(name="pg_shipped", collectors=shipped))


ONE_COLLECTOR = """collector_name: one
metrics:
  - metric_name: bench_one
    type: gauge
    help: 'SELECT 1'
    values: [n]
    query: SELECT 1 AS n
"""


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def driver_baseline(samples: int) -> tuple[list[float], list[float]]:
    fresh: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        conn = await psycopg.AsyncConnection.connect(host="127.0.0.1", dbname="test", user="postgres",
                                                     autocommit=True)
        async with conn.cursor() as cursor:
            await cursor.execute("SELECT 1 AS n")
            await cursor.fetchall()
        await conn.close()
        fresh.append(time.perf_counter() - started)
    open_conn: list[float] = []
    conn = await psycopg.AsyncConnection.connect(host="127.0.0.1", dbname="test", user="postgres", autocommit=True)
    for _ in range(samples):
        started = time.perf_counter()
        async with conn.cursor() as cursor:
            await cursor.execute("SELECT 1 AS n")
            await cursor.fetchall()
        open_conn.append(time.perf_counter() - started)
    await conn.close()
    return fresh, open_conn


def sequential_probes(url: str, module: str, samples: int) -> list[float]:
    latencies: list[float] = []
    with httpx.Client(base_url=url, timeout=15) as client:
        for _ in range(5):  # warm up: imports, first connections
            client.get("/probe", params={"module": module, "target": "127.0.0.1"})
        for _ in range(samples):
            started = time.perf_counter()
            response = client.get("/probe", params={"module": module, "target": "127.0.0.1"})
            latencies.append(time.perf_counter() - started)
            if "\nprobe_success 1\n" not in response.text:
                raise RuntimeError(f"probe failed:\n{response.text}")
    return latencies


def run_wrk(url: str, concurrency: int, duration: float) -> dict[str, int]:
    threads = min(concurrency, 2)
    result = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{duration:g}s", "--timeout", "15s",
         "-s", str(LUA_SCRIPT), url], capture_output=True, text=True, check=True)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            summary: dict[str, int] = json.loads(line.removeprefix("BENCH_JSON "))
            return summary
    raise RuntimeError(f"wrk printed no summary:\n{result.stdout}\n{result.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", default="10,50")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    levels = [int(c) for c in args.concurrency.split(",")]

    fresh, open_conn = asyncio.run(driver_baseline(args.samples))
    lines = [f"# SQL prober benchmark ({time.strftime('%Y-%m-%d')}, {platform.node()}, "
             f"{platform.python_version()}, PostgreSQL on 127.0.0.1)", ""]
    lines += ["| measurement (sequential) | p50 ms | p99 ms |", "|---|---|---|",
              f"| psycopg: SELECT 1 on an open connection | {statistics.median(open_conn) * 1e3:.3f} | "
              f"{percentile(open_conn, 99) * 1e3:.3f} |",
              f"| psycopg: connect + SELECT 1 + close | {statistics.median(fresh) * 1e3:.3f} | "
              f"{percentile(fresh, 99) * 1e3:.3f} |"]
    with tempfile.TemporaryDirectory(prefix="bench-sql-") as tmp:
        workdir = Path(tmp)
        (workdir / "one.collector.yml").write_text(ONE_COLLECTOR)
        module_file = workdir / "sql.yml"
        module_file.write_text(modules_file())
        with probe_exporter(workdir, module_file) as exporter:
            probes = {module: sequential_probes(exporter.url, module, args.samples)
                      for module in ("pg_one", "pg_shipped")}
            for module, latencies in probes.items():
                lines.append(f"| /probe {module} (HTTP + probe) | {statistics.median(latencies) * 1e3:.3f} | "
                             f"{percentile(latencies, 99) * 1e3:.3f} |")
            overhead = statistics.median(probes["pg_one"]) - statistics.median(fresh)
            lines += ["", f"Probe overhead over the driver's connect + query + close (p50): "
                          f"**{overhead * 1e3:.2f} ms** per probe.", ""]
            lines += ["| module | concurrency | probes/s | p50 ms | p99 ms | failed | exporter CPU ms/probe |",
                      "|---|---|---|---|---|---|---|"]
            for module in ("pg_one", "pg_shipped"):
                for concurrency in levels:
                    url = f"{exporter.url}/probe?module={module}&target=127.0.0.1"
                    cpu_before = exporter.cpu_seconds()
                    summary = run_wrk(url, concurrency, args.duration)
                    cpu = exporter.cpu_seconds() - cpu_before
                    seconds = summary["duration_us"] / 1e6
                    requests = max(summary["requests"], 1)
                    lines.append(f"| {module} | {concurrency} | {requests / seconds:.0f} | "
                                 f"{summary['p50_us'] / 1e3:.1f} | {summary['p99_us'] / 1e3:.1f} | "
                                 f"{summary['failed'] + summary['errors']} | {cpu / requests * 1e3:.2f} |")
                    print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()

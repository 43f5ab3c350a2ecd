"""HTTP probe throughput: probe_exporter against blackbox_exporter on the same local nginx target.

    apt-get install nginx-light wrk
    .venv/bin/python bench/http/run.py [--duration 10] [--repeat 3] [--concurrency 1,10,50]
                                       [--variants asyncio-h11,no-gc-freeze] [--no-blackbox]
                                       [--workers 1,2] [--baseline DIR]

Starts nginx (Debian's nginx-light) on a loopback port, probe_exporter and, when Debian's
prometheus-blackbox-exporter is installed, blackbox_exporter with the same http_2xx module; then
drives `/probe?target=<nginx>&module=http_2xx` with wrk (Debian's wrk, C, epoll, keep-alive
connections to the exporter) at each concurrency, `--repeat` times, and prints a Markdown table
(also written to bench/results/http.md). Each cell is the median of the repeats with [min-max];
runs are interleaved across exporters, so load from other work on a shared machine hits them alike.
`--variants` adds probe_exporter with one performance setting undone (see _serve_variant.py).

CPU per probe is the exporter's utime+stime delta (/proc/PID/stat) over the run divided by probes;
RSS and PSS are summed over the exporter's process tree (with `--workers 2`, the parent and its workers:
RSS counts the pages they share once per process, PSS splits them);
wrk's own CPU is reported so one can see the load generator is not the bottleneck.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import (  # the helpers sit beside this script, not in a package
    BLACKBOX_BINARY,
    HTTP_MODULE,
    HTTPS_MODULE,
    REPO,
    Proc,
    blackbox_exporter,
    nginx_target,
    probe_exporter,
)

LUA_SCRIPT = Path(__file__).with_name("report.lua")


@dataclass
class LevelRun:
    probes_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_probe: float
    exporter_cores: float  # exporter CPU seconds per wall second
    wrk_cores: float
    failed: int
    requests: int


@dataclass
class ExporterResult:
    name: str
    rss_idle_mib: float = 0.0
    rss_after_mib: float = 0.0
    pss_idle_mib: float = 0.0
    levels: dict[int, list[LevelRun]] = field(default_factory=dict)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, concurrency: int, duration: float) -> tuple[dict[str, int], float]:
    threads = 1 if concurrency < 10 else 2
    before = children_cpu()
    result = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{duration:g}s", "--timeout", "15s",
         "-s", str(LUA_SCRIPT), url], capture_output=True, text=True, check=True)
    wrk_cpu = children_cpu() - before
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON ")), wrk_cpu
    raise RuntimeError(f"wrk printed no summary:\n{result.stdout}\n{result.stderr}")


# scenario -> (path on nginx, module): `https` probes nginx's TLS listener, `redirect` gets one 302 first.
SCENARIOS = {"http": ("/", "http_2xx"), "https": ("/", "https_2xx"), "redirect": ("/redirect", "http_2xx")}


def warm_up(url: str, probes: int = 20) -> None:
    """First probes import the prober and build its transport; keep them out of the numbers."""
    for _ in range(probes):
        with urllib.request.urlopen(url, timeout=15) as response:
            body = response.read().decode()
        if "\nprobe_success 1\n" not in body:
            raise RuntimeError(f"warm-up probe failed:\n{body}")


def measure(exporters: list[Proc], target: str, module: str, levels: list[int], duration: float,
            repeat: int) -> list[ExporterResult]:
    """Runs are interleaved (repeat -> concurrency -> exporter) so that load from other work on a shared
    machine spreads over all exporters instead of skewing whichever ran at the wrong time."""
    urls = {e.name: f"{e.url}/probe?target={target}&module={module}" for e in exporters}
    results = {e.name: ExporterResult(e.name) for e in exporters}
    time.sleep(1.0)
    for exporter in exporters:
        results[exporter.name].rss_idle_mib = exporter.rss_mib()
        results[exporter.name].pss_idle_mib = exporter.pss_mib()
        warm_up(urls[exporter.name])
    for _ in range(repeat):
        for concurrency in levels:
            for exporter in exporters:
                cpu_before = exporter.cpu_seconds()
                summary, wrk_cpu = run_wrk(urls[exporter.name], concurrency, duration)
                cpu = exporter.cpu_seconds() - cpu_before
                seconds = summary["duration_us"] / 1e6
                requests = summary["requests"]
                failed = summary["failed"] + summary["errors"]
                results[exporter.name].levels.setdefault(concurrency, []).append(LevelRun(
                    probes_per_second=requests / seconds, p50_ms=summary["p50_us"] / 1000,
                    p99_ms=summary["p99_us"] / 1000, cpu_ms_per_probe=1000 * cpu / max(requests, 1),
                    exporter_cores=cpu / seconds, wrk_cores=wrk_cpu / seconds, failed=failed, requests=requests))
                print(f"  {exporter.name} c={concurrency}: {requests / seconds:.0f} probes/s, "
                      f"p50 {summary['p50_us'] / 1000:.1f} ms, p99 {summary['p99_us'] / 1000:.1f} ms, "
                      f"exporter {cpu / seconds:.2f} cores, wrk {wrk_cpu / seconds:.2f} cores, failed {failed}, "
                      f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    for exporter in exporters:
        results[exporter.name].rss_after_mib = exporter.rss_mib()
    return [results[e.name] for e in exporters]


def spread(values: list[float], fmt: str) -> str:
    median = statistics.median(values)
    if len(values) == 1:
        return format(median, fmt)
    return f"{format(median, fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def _ratios(results: list[ExporterResult], reference: ExporterResult, levels: list[int], what: str,
            value: Callable[[LevelRun], float]) -> list[str]:
    """A table of each exporter's median `value` over blackbox_exporter's, per concurrency."""
    others = [r for r in results if r is not reference]
    lines = ["", "| concurrency | " + " | ".join(f"{r.name} / blackbox {what}" for r in others) + " |",
             "|---:|" + "---:|" * len(others)]
    for concurrency in levels:
        base = statistics.median(value(run) for run in reference.levels[concurrency])
        cells = [f"{statistics.median(value(run) for run in r.levels[concurrency]) / base:.2f}" for r in others]
        lines.append(f"| {concurrency} | " + " | ".join(cells) + " |")
    return lines


def table(results: list[ExporterResult], levels: list[int], args: argparse.Namespace, scenario: str) -> str:
    path, module = SCENARIOS[scenario]
    lines = [
        f"HTTP probe benchmark, scenario `{scenario}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"wrk, {args.duration:g} s per run, {args.repeat} runs per cell (interleaved across exporters): "
        "median [min-max]. "
        f"Target: local nginx{' over TLS' if scenario == 'https' else ''} `{path}`, module {module} (ip4). "
        "CPU is the exporter's whole process tree. The machine may be shared.",
        "",
        "| exporter | concurrency | probes/s | p50 ms | p99 ms | CPU ms/probe | exporter cores | wrk cores | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for concurrency in levels:
            runs = result.levels[concurrency]
            lines.append(
                f"| {result.name} | {concurrency} | {spread([r.probes_per_second for r in runs], '.0f')} | "
                f"{spread([r.p50_ms for r in runs], '.1f')} | {spread([r.p99_ms for r in runs], '.1f')} | "
                f"{spread([r.cpu_ms_per_probe for r in runs], '.2f')} | "
                f"{spread([r.exporter_cores for r in runs], '.2f')} | {spread([r.wrk_cores for r in runs], '.2f')} | "
                f"{sum(r.failed for r in runs)}/{sum(r.requests for r in runs)} |")
    lines += ["", "| exporter | RSS idle after start (MiB) | PSS idle (MiB) | RSS after the runs (MiB) |",
              "|---|---:|---:|---:|"]
    lines += [f"| {r.name} | {r.rss_idle_mib:.1f} | {r.pss_idle_mib:.1f} | {r.rss_after_mib:.1f} |" for r in results]
    reference = next((r for r in results if r.name == "blackbox_exporter"), None)
    if reference is not None:
        lines += _ratios(results, reference, levels, "probes/s", lambda run: run.probes_per_second)
        lines += _ratios(results, reference, levels, "CPU per probe", lambda run: run.cpu_ms_per_probe)
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per exporter and concurrency (default 3)")
    parser.add_argument("--concurrency", default="1,10,50", help="comma-separated levels (default 1,10,50)")
    parser.add_argument("--no-blackbox", action="store_true", help="skip blackbox_exporter")
    parser.add_argument("--variants", default="",
                        help="also run these probe_exporter variants, comma-separated: asyncio-h11 (without "
                             "uvloop/httptools), no-gc-freeze (default GC settings), httpcore-path (HTTP "
                             "modules on httpcore, not the lean exchange)")
    parser.add_argument("--workers", default="0",
                        help="probe_exporter rows with these --web.workers counts, comma-separated "
                             "(default 0: the exporter's default, one worker per CPU)")
    parser.add_argument("--baseline", type=Path, action="append", default=[], metavar="DIR",
                        help="also run probe_exporter from this source tree (A/B of a change; e.g. "
                             "`git archive HEAD probe_exporter modules | tar -x -C DIR`); repeatable")
    parser.add_argument("--scenarios", default="http",
                        help="comma-separated: http (nginx `/`), https (nginx over TLS), redirect (one 302, then "
                             "`/`); default http")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "http.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    levels = [int(level) for level in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        module_file = workdir / "http.yml"
        scenarios = args.scenarios.split(",")
        if unknown := set(scenarios) - set(SCENARIOS):
            sys.exit(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
        module_file.write_text(HTTP_MODULE + HTTPS_MODULE.format(ca_file=workdir / "ca.pem"))
        nginx = stack.enter_context(nginx_target(workdir, tls="https" in scenarios))
        print(f"target: nginx at {nginx.url}", file=sys.stderr)
        exporters = [stack.enter_context(probe_exporter(workdir, module_file, workers=int(count)))
                     for count in args.workers.split(",")]
        for source in args.baseline:
            exporters.append(stack.enter_context(probe_exporter(workdir, module_file, source=source.resolve())))
        for variant in filter(None, args.variants.split(",")):
            exporters.append(stack.enter_context(probe_exporter(workdir, module_file, variant)))
        if BLACKBOX_BINARY.exists() and not args.no_blackbox:
            exporters.append(stack.enter_context(blackbox_exporter(workdir, module_file)))
        else:
            print(f"{BLACKBOX_BINARY} not installed: no comparison", file=sys.stderr)
        load_before = os.getloadavg()[0]
        tables = []
        for scenario in scenarios:
            path, module = SCENARIOS[scenario]
            base = nginx.tls_url if scenario == "https" else nginx.url
            results = measure(exporters, base + path, module, levels, args.duration, args.repeat)
            tables.append(table(results, levels, args, scenario))
        load_after = os.getloadavg()[0]
    text = "\n".join(tables) + (
        f"\nLoad average (1 min) before/after: {load_before:.1f} / {load_after:.1f} on {os.cpu_count()} cores.\n")
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where probe_exporter's CPU goes per HTTP probe: py-spy samples the server under wrk load.

    .venv/bin/python bench/http/profile_server.py [--duration 15] [--concurrency 50] [--variant no-gc-freeze]

Starts nginx and probe_exporter as bench/http/run.py does, drives /probe with wrk, records the
server with `py-spy record --format raw` (pip install py-spy) and prints the share of samples per
area: inclusive time of the main steps of a probe, and self time by package. The raw stacks stay in
bench/results/ for flamegraph tools (`py-spy record --format flamegraph` takes the same flags).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import HTTP_MODULE, REPO, VENV_BIN, nginx_target, probe_exporter
from run import run_wrk, warm_up

# Inclusive areas: a sample counts for an area when any frame of its stack matches (function, file part).
INCLUSIVE = [
    ("/probe route handler (everything below)", "probe", "probe_exporter/web/routes.py"),
    ("_execute (pipeline: slot and prober run)", "_execute", "probe_exporter/pipeline.py"),
    ("probe_http (HTTP prober, all of it)", "probe_http", "probe_exporter/probers/http/probe.py"),
    ("  DNS / choose_protocol", "choose_protocol", "probe_exporter/probers/net/addr.py"),
    ("  the lean HTTP/1.1 exchange", "lean_exchange", "probe_exporter/probers/http/lean.py"),
    ("  reading the body", "", "probe_exporter/probers/http/body.py"),
    ("per-probe log lines (ProbeLog)", "_emit", "probe_exporter/logs.py"),
    ("exposition (metrics_response: collect + render)", "metrics_response", "probe_exporter/web/responses.py"),
    ("self-metrics observe_probe", "observe_probe", "probe_exporter/selfmetrics.py"),
]

# Exclusive areas: each sample goes to the first area matching its stack from the leaf up, stdlib frames
# (contextlib, ipaddress, re, ...) being charged to the library or module that called them.
OWNERS = [
    ("per-probe log (probe_exporter/logs.py)", ("probe_exporter/logs.py",)),
    ("exposition (exposition.py, probe_metrics.py, responses.py)",
     ("probe_exporter/exposition.py", "probe_exporter/probe_metrics.py", "probe_exporter/web/responses.py")),
    ("self-metrics (selfmetrics.py, prometheus_client)", ("probe_exporter/selfmetrics.py", "prometheus_client/")),
    ("HTTP prober own code (probers/http/, probers/net/)", ("probe_exporter/probers/",)),
    ("pipeline.py", ("probe_exporter/pipeline.py",)),
    ("routes.py", ("probe_exporter/web/routes.py",)),
    ("httpx (URL, Request, transport)", ("httpx/",)),
    ("httpcore (HTTP/1.1 client, pool)", ("httpcore/", "h11/")),
    ("anyio (TCP connect, streams)", ("anyio/",)),
    ("FastAPI / Starlette", ("fastapi/", "starlette/")),
    ("uvicorn (httptools/h11 protocol)", ("uvicorn/", "httptools/")),
]


def owner_of(frames: list[tuple[str, str]]) -> str:
    for _func, path in reversed(frames):
        if not path or is_stdlib(path):
            continue  # stdlib or native: charge the caller
        for label, parts in OWNERS:
            if any(part in path for part in parts):
                return label
        return "other: " + package_of(path)
    return "event loop (asyncio/uvloop, native I/O)"


FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def package_of(path: str) -> str:
    """py-spy prints paths relative to sys.path: `httpx/_models.py`, `asyncio/base_events.py`."""
    if path.startswith("probe_exporter/"):
        return path
    return path.split("/", 1)[0].removesuffix(".py")


def is_stdlib(path: str) -> bool:
    return path.startswith("<") or package_of(path) in sys.stdlib_module_names


def summarise(raw: Path, top: int, cpu_ms_per_probe: float = 0.0) -> str:
    stacks: list[tuple[list[tuple[str, str]], int]] = []
    for line in raw.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        frames = []
        for frame in stack_text.split(";"):
            match = FRAME.match(frame)
            frames.append((match["func"], match["file"]) if match else (frame, ""))
        stacks.append((frames, int(count)))
    total = sum(count for _, count in stacks) or 1
    owners: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        owners[owner_of(frames)] += count
    out = [f"{total} samples (busy ones: py-spy skips idle samples)", "",
           "| area (exclusive, stdlib charged to its caller) | share | µs CPU per probe |", "|---|---:|---:|"]
    out += [f"| {label} | {100 * n / total:.1f}% | {1000 * cpu_ms_per_probe * n / total:.0f} |"
            for label, n in owners.most_common()]
    # Inclusive shares only see the running coroutine's own chain: work done in helper tasks (anyio's
    # connect) or protocol callbacks (uvicorn's data_received) is missing here, present above.
    out += ["", "| area (inclusive: any frame in the running coroutine's stack) | share of samples |", "|---|---:|"]
    for label, func, file_part in INCLUSIVE:
        hits = sum(count for frames, count in stacks if any(
            (not func or f == func or f.endswith("." + func)) and file_part in path for f, path in frames))
        out.append(f"| {label} | {100 * hits / total:.1f}% |")
    by_package: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        func, path = frames[-1]
        if func == "Runner.run":  # py-spy puts the loop's native time (uvloop, epoll) on this frame
            func, path = "event loop native code", "uvloop/asyncio"
        by_package[package_of(path)] += count
        by_function[f"{func} ({package_of(path)})"] += count
    out += ["", "| self time by package/file | share |", "|---|---:|"]
    out += [f"| {name} | {100 * n / total:.1f}% |" for name, n in by_package.most_common(top)]
    out += ["", "| self time by function | share |", "|---|---:|"]
    out += [f"| {name} | {100 * n / total:.1f}% |" for name, n in by_function.most_common(top)]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--variant", default="", help="profile a variant of bench/http/_serve_variant.py")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "http-profile.md")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if py_spy is None:
        sys.exit("py-spy not found: .venv/bin/pip install py-spy")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    raw = args.output.with_suffix(".raw.txt")
    with tempfile.TemporaryDirectory(prefix="bench-http-profile-") as tmp:
        workdir = Path(tmp)
        module_file = workdir / "http.yml"
        module_file.write_text(HTTP_MODULE)
        with nginx_target(workdir) as nginx, probe_exporter(workdir, module_file, args.variant,
                                                                    workers=1) as exporter:
            url = f"{exporter.url}/probe?target={nginx.url}/&module=http_2xx"
            warm_up(url, 200)
            result: dict[str, object] = {}
            load = threading.Thread(target=lambda: result.update(
                zip(("summary", "wrk_cpu"), run_wrk(url, args.concurrency, args.duration + 2), strict=True)))
            cpu_before = exporter.cpu_seconds()
            load.start()
            subprocess.run([py_spy, "record", "--pid", str(exporter.pid), "--format", "raw", "--output", str(raw),
                            "--duration", str(args.duration), "--rate", str(args.rate), "--nonblocking"],
                           check=True, capture_output=True)
            load.join()
            cpu = exporter.cpu_seconds() - cpu_before
    summary = result["summary"]
    cpu_ms_per_probe = 1000 * cpu / summary["requests"]  # type: ignore[index]
    text = (f"py-spy profile of {exporter.name} under wrk -c {args.concurrency} "
            f"({summary['requests'] / (summary['duration_us'] / 1e6):.0f} probes/s while sampled at "
            f"{args.rate} Hz, --nonblocking; {cpu_ms_per_probe:.2f} ms exporter CPU per probe)\n\n"
            + summarise(raw, args.top, cpu_ms_per_probe))  # type: ignore[index]
    print(text)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

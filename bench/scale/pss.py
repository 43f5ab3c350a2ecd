"""Idle memory of the whole exporter per `--web.workers` count: PSS (proportional set size: pages
shared between processes are split among them) summed over the parent and its workers, after one
probe, read from /proc/<pid>/smaps_rollup. The issue's target on a 2-core machine: <= 96 MiB with the
default worker count. Prints one line per worker count; asserts nothing.

    .venv/bin/python -m bench.scale.pss [--workers 1 2 4] [--settle 2]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.proctree import process_tree, pss_kib
from probe_exporter.workers import usable_cpus

MODULES = "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def measure(workers: int, config: Path, settle: float) -> tuple[int, list[int]]:
    """(processes, PSS in KiB of each) of an exporter with `workers` workers after one probe."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "probe_exporter", "--config.file", str(config),
                                "--web.listen-address", f"127.0.0.1:{port}", "--web.workers", str(workers)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(base + "/-/healthy")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        while len(process_tree(process.pid)) < (workers + 1 if workers > 1 else 1):
            time.sleep(0.1)
        # One probe on each worker's connection at least once: fresh connections until every worker answered.
        for _ in range(4 * workers):
            _get(f"{base}/probe?module=http_2xx&target={base}/-/healthy")
        _get(base + "/metrics")
        time.sleep(settle)
        pids = process_tree(process.pid)
        return len(pids), [pss_kib(pid) for pid in pids]
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="*", default=sorted({1, 2, usable_cpus(), 4}))
    parser.add_argument("--settle", type=float, default=2.0, help="Seconds idle before reading PSS.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "modules.yml"
        config.write_text(MODULES)
        print(f"usable CPUs: {usable_cpus()} (default --web.workers)")
        for workers in args.workers:
            processes, pss = measure(workers, config, args.settle)
            print(f"--web.workers {workers}: {processes} processes, PSS total {sum(pss) / 1024:.1f} MiB "
                  f"({', '.join(f'{value / 1024:.1f}' for value in pss)} MiB each)")


if __name__ == "__main__":
    main()

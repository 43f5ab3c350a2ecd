"""Honest timings under load: an open-loop stream of http_2xx probes at a fixed rate to a target that
answers after exactly 50 ms, side by side with Debian's blackbox_exporter in the same run.

Open loop means a probe is sent on schedule whether or not the earlier ones have answered, as many
Prometheus servers scraping one exporter do. Reported per exporter and rate: the achieved rate (probes
answered with probe_success 1 per second of the run, against the offered rate), and how far the
reported probe_duration_seconds sits above the true 50 ms (p50, p99): the exporter's own queueing and
event-loop lag showing up as target latency; and the exporter's CPU per probe (process tree). Both
exporters run with their default flags.

    .venv/bin/python bench/scale/open_loop.py [--rates 1000,1500] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storm import BLACKBOX, MODULES, PYTHON, REPO, TARGET, free_port, get, started

from bench.proctree import cpu_seconds

TARGET_SECONDS = 0.050


def own_cpu_seconds() -> float:
    """The load generator's CPU (this process): it shares the machine with the exporter under test."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
DURATION = re.compile(rb"^probe_duration_seconds ([0-9.e+-]+)$", re.M)


async def open_loop(port: int, path: str, rate: float, seconds: float) -> dict[str, float]:
    """Send rate * seconds probes on schedule; collect (answered at, reported duration) of the good ones."""
    loop = asyncio.get_running_loop()
    count = int(rate * seconds)
    answers: list[tuple[float, float]] = []

    async def one() -> None:
        status, body = await get(port, path)
        match = DURATION.search(body)
        if status == 200 and b"\nprobe_success 1\n" in b"\n" + body and match:
            answers.append((loop.time(), float(match.group(1))))

    start = loop.time()
    tasks = []
    for index in range(count):
        delay = start + index / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    if not answers:
        return {"offered": rate, "achieved": 0.0, "ok_share": 0.0, "excess_p50_ms": float("nan"),
                "excess_p99_ms": float("nan")}
    span = max(max(at for at, _ in answers) - start, seconds)
    excess = sorted((reported - TARGET_SECONDS) * 1000 for _, reported in answers)
    return {"offered": rate, "achieved": len(answers) / span, "ok_share": len(answers) / count,
            "excess_p50_ms": statistics.median(excess), "excess_p99_ms": excess[int(len(excess) * 0.99) - 1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,1500")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    uvloop.install()  # the load generator's own CPU per probe, as low as asyncio allows
    rates = [float(rate) for rate in args.rates.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        modules = workdir / "modules.yml"
        modules.write_text(MODULES)
        target_port = free_port()
        # storm.py's target, with /slow answering after TARGET_SECONDS.
        target = subprocess.Popen([str(PYTHON), "-c", TARGET, str(target_port), str(TARGET_SECONDS)], cwd=REPO)
        try:
            time.sleep(1.0)
            exporters = {
                "blackbox_exporter": lambda port: [str(BLACKBOX), f"--config.file={modules}",
                                                   f"--web.listen-address=127.0.0.1:{port}"],
                "probe_exporter": lambda port: [str(PYTHON), "-m", "probe_exporter", f"--config.file={modules}",
                                                f"--web.listen-address=127.0.0.1:{port}"],
            }
            path = f"/probe?module=http_2xx&target=http://127.0.0.1:{target_port}/slow"
            results: dict[tuple[str, float], dict[str, float]] = {}
            for rate in rates:  # interleaved, so both see the same machine at each rate
                for name, argv in exporters.items():
                    port = free_port()
                    with started(argv(port), f"http://127.0.0.1:{port}/-/healthy", workdir / f"{name}.log") as process:
                        asyncio.run(get(port, path))  # warm up
                        before = cpu_seconds(process.pid), own_cpu_seconds(), cpu_seconds(target.pid)
                        row = results[(name, rate)] = asyncio.run(open_loop(port, path, rate, args.seconds))
                        after = cpu_seconds(process.pid), own_cpu_seconds(), cpu_seconds(target.pid)
                        row["cpu_ms"], row["client_ms"], row["target_ms"] = (
                            (a - b) * 1000 / (rate * args.seconds) for a, b in zip(after, before, strict=True))
        finally:
            target.terminate()
            target.wait()
    print(f"open loop, {args.seconds:g} s per rate, target answers after {TARGET_SECONDS * 1000:g} ms")
    print(f"{'exporter':<18} {'offered/s':>9} {'achieved/s':>10} {'ok':>7} {'excess p50 ms':>13} {'excess p99 ms':>13} "
          f"{'CPU ms/probe':>12} {'client, target ms/probe':>23}")
    for (name, rate), row in results.items():
        print(f"{name:<18} {rate:>9.0f} {row['achieved']:>10.0f} {row['ok_share']:>7.1%} "
              f"{row['excess_p50_ms']:>13.2f} {row['excess_p99_ms']:>13.2f} {row['cpu_ms']:>12.2f} "
              f"{row['client_ms']:>15.2f}, {row['target_ms']:.2f}")
    for rate in rates:
        ours, theirs = results[("probe_exporter", rate)], results[("blackbox_exporter", rate)]
        bound = max(1.1 * theirs["excess_p99_ms"], theirs["excess_p99_ms"] + 1.0)
        print(f"{rate:.0f}/s: achieved {ours['achieved'] / rate:.1%} of offered (target >= 97%); "
              f"p99 excess {ours['excess_p99_ms']:.2f} ms against the bound {bound:.2f} ms "
              f"(max(1.1x blackbox, blackbox + 1 ms))")


if __name__ == "__main__":
    main()

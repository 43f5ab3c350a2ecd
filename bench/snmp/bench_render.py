"""Where a scrape's CPU goes after the network: the 5-module round's PDUs (system, if_mib, hrSWRun,
hrStorage, ip_mib from net-snmp's snmpd, recorded once) rendered into metric families and then into
the text exposition, repeatedly, in this process. Prints µs per varbind for each stage.

    .venv/bin/python bench/snmp/bench_render.py [--repeat 200] [--profile] [--lag]

--lag: the event loop's longest stall while a 200,000-varbind ifTable (10,000 interfaces x 20
columns) renders, sliced (render_module_sliced, what scrapes use) and in one go.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench_round import MODULES, start_snmpd, write_config  # noqa: E402

from probe_exporter.config import load_config  # noqa: E402
from probe_exporter.exposition import render_text  # noqa: E402
from probe_exporter.logs import ProbeLog  # noqa: E402
from probe_exporter.probers.snmp import render, scrape  # noqa: E402
from probe_exporter.probers.snmp.values import OCTETS, UNSIGNED  # noqa: E402
from tests.probers.snmp import recordings  # noqa: E402
from tests.support.ports import free_port  # noqa: E402


async def record(config_path: Path, target: str) -> list[tuple[Any, list[Any]]]:
    """(plan, pdus) of each module, taken from a real scrape."""
    config = load_config([str(config_path)])
    recorded: list[tuple[Any, list[Any]]] = []
    original = scrape.render_module_sliced

    async def keep(plan: Any, pdus: list[Any], out: Any, wrap: bool = True) -> None:
        recorded.append((plan, list(pdus)))
        await original(plan, pdus, out, wrap)

    scrape.render_module_sliced = keep  # type: ignore[assignment]
    scrape.PROGRESSIVE = False  # every module through render_module_sliced, where `keep` sees its PDUs
    try:
        for name in MODULES:
            module = config.modules[f"{name}_v2c"]
            deadline = asyncio.get_running_loop().time() + 10
            result = await scrape.scrape(target, [(name, module)], config, {}, deadline, ProbeLog(target=target))
            assert result.success, result.modules[0].error
    finally:
        scrape.render_module_sliced = original  # type: ignore[assignment]
        scrape.PROGRESSIVE = True
    return recorded


def huge_walk() -> list[tuple[tuple[int, ...], tuple[int, object]]]:
    table = (1, 3, 6, 1, 2, 1, 2, 2, 1)
    return [((*table, column, row), (OCTETS, f"eth{row}".encode()) if column == 2 else (UNSIGNED, row * column))
            for column in range(1, 21) for row in range(1, 10_001)]


async def loop_lag(plan: Any, pdus: list[Any], sliced: bool) -> tuple[float, float]:
    """(longest stall of a 1 ms ticker, render seconds)."""
    longest = 0.0
    done = False

    async def ticker() -> None:
        nonlocal longest
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            longest = max(longest, time.perf_counter() - before - 0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    start = time.perf_counter()
    out = render.Families()
    if sliced:
        await render.render_module_sliced(plan, pdus, out)
    else:
        render.render_module(plan, pdus, out)
    seconds = time.perf_counter() - start
    await asyncio.sleep(0.005)
    done = True
    await task
    return longest, seconds


def lag_report() -> None:
    config = load_config([str(recordings.shared_snmp_yml())])
    plan = scrape.plan_of(config.modules["if_mib"])
    pdus = huge_walk()
    for sliced in (True, False):
        longest, seconds = asyncio.run(loop_lag(plan, pdus, sliced))
        print(f"200k-varbind render {'sliced' if sliced else 'in one go'}: {seconds:.2f} s, "
              f"longest event-loop stall {longest * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--lag", action="store_true")
    args = parser.parse_args()
    if args.lag:
        lag_report()
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port = free_port(socket.SOCK_DGRAM)
        agent = start_snmpd(root, port)
        try:
            recorded = asyncio.run(record(write_config(root), f"127.0.0.1:{port}"))
        finally:
            agent.terminate()
            agent.wait(10)
    varbinds = sum(len(pdus) for _, pdus in recorded)

    def families() -> list[Any]:
        out = render.Families()
        for plan, pdus in recorded:
            module = render.Families()
            render.render_module(plan, pdus, module)
            out.merge(module)
        return sorted(out.rendered.families.values(), key=lambda f: f.name)

    rendered = families()
    samples = sum(len(f.samples) for f in rendered)
    profile = cProfile.Profile() if args.profile else None
    if profile:
        profile.enable()
    start = time.process_time()
    for _ in range(args.repeat):
        families()
    render_seconds = (time.process_time() - start) / args.repeat
    start = time.process_time()
    for _ in range(args.repeat):
        render_text(rendered)
    text_seconds = (time.process_time() - start) / args.repeat
    if profile:
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    print(f"{varbinds} varbinds, {samples} samples per round")
    print(f"PDUs -> families:   {render_seconds * 1000:6.2f} ms per round, "
          f"{render_seconds / varbinds * 1e6:5.2f} µs/varbind")
    print(f"families -> text:   {text_seconds * 1000:6.2f} ms per round, {text_seconds / samples * 1e6:5.2f} µs/sample")


if __name__ == "__main__":
    main()

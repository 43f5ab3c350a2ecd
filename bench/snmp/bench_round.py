"""The 5-module round (system, if_mib, hrSWRun, hrStorage, ip_mib of the generated snmp.yml) against
one net-snmp snmpd on loopback, probe_exporter and Debian's snmp_exporter 0.21 side by side, for
v2c and for SNMPv3 SHA/AES authPriv: exporter CPU per round (from /proc), the ratio, wall time per
round at concurrency 1 and 20 rounds at once.

    .venv/bin/python bench/snmp/bench_round.py [--rounds 20] [--only v2c|v3] [--with-pysnmp]

--with-pysnmp adds a third exporter: probe_exporter with every request through pysnmp
(FAST_COMMUNITY_PATH and FAST_V3_PATH off), the path v3 took before it moved to our codec.

A round is the five modules, one request each (0.21 has no multi-module requests). Both exporters
load the same pre-0.23-format file (one copy of each module per auth). The exporters take turns
round by round, in alternating order, so drift on a shared machine hits all of them alike; CPU is
read over each exporter's process tree (probe_exporter forks a worker per core by default). Prints a
table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench_if_mib import GO_BINARY, cpu_seconds, process, wait_http  # noqa: E402

from tests.probers.snmp import agents, recordings  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

MODULES = ("system", "if_mib", "hrSWRun", "hrStorage", "ip_mib")
AUTHS = {
    "v2c": {"community": "public"},
    "v3": {"username": "benchuser", "security_level": "authPriv", "auth_protocol": "SHA", "password": "authpass123",
           "priv_protocol": "AES", "priv_password": "privpass123"},
}


def write_config(root: Path) -> Path:
    generated = yaml.load(recordings.shared_snmp_yml().read_bytes(), Loader=yaml.CSafeLoader)["modules"]
    old = {}
    for security, auth in AUTHS.items():
        for name in MODULES:
            old[f"{name}_{security}"] = dict(generated[name], version=3 if security == "v3" else 2, auth=auth)
    path = root / "snmp021.yml"
    path.write_text(yaml.safe_dump(old, sort_keys=False))
    return path


def start_snmpd(root: Path, port: int) -> subprocess.Popen[bytes]:
    snmpd = shutil.which("snmpd") or "/usr/sbin/snmpd"
    conf = root / "snmpd.conf"
    conf.write_text("rocommunity public 127.0.0.1\nsysName bench-agent\n"
                    "createUser benchuser SHA authpass123 AES privpass123\nrouser benchuser priv\n")
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(root / "persist"), "MIBS": ""}
    proc = subprocess.Popen([snmpd, "-f", "-Lf", str(root / "snmpd.log"), "-C", "-c", str(conf), "-p",
                             str(root / "snmpd.pid"), "-M", "/nonexistent", f"udp:127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agents.wait_for_agent(port, "public", proc, "snmpd")
    return proc


async def one_round(client: httpx.AsyncClient, base: str, target: str, security: str) -> tuple[float, int]:
    start = time.perf_counter()
    pdus = 0
    for name in MODULES:
        response = await client.get(f"{base}/snmp", params={"target": target, "module": f"{name}_{security}"})
        assert response.status_code == 200, response.text[:300]
        for line in response.text.splitlines():
            if line.startswith("snmp_scrape_pdus_returned"):
                pdus += int(float(line.split()[-1]))
    return time.perf_counter() - start, pdus


async def measure(exporters: list[tuple[str, str, int]], target: str, security: str,
                  rounds: int) -> dict[str, dict[str, float]]:
    """Each exporter's CPU per round (from /proc, over its process tree) and wall per round, with the
    exporters interleaved: round i runs on every exporter in turn (the order alternating) before
    round i+1, and so do the batches of 20 concurrent rounds. Whatever else the shared machine does
    then lands on all of them alike, so the ratios hold even when the absolute figures drift."""
    concurrent = 20
    cpu = {name: 0.0 for name, _, _ in exporters}
    cpu20 = dict(cpu)
    walls: dict[str, list[float]] = {name: [] for name in cpu}
    walls20: dict[str, list[float]] = {name: [] for name in cpu}
    pdus: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=120) as client:
        for _name, base, _pid in exporters:
            for _ in range(3):
                await one_round(client, base, target, security)  # warm up: discovery, keys, plans
            # Once at 20 as well: the sequential rounds share one connection, so one worker process; each
            # worker discovers the agent, localises the SNMPv3 keys and compiles the plans on its first scrape.
            await asyncio.gather(*(one_round(client, base, target, security) for _ in range(concurrent)))
        for turn in range(rounds):
            for name, base, pid in exporters if turn % 2 == 0 else exporters[::-1]:
                before = cpu_seconds(pid)
                wall, pdus[name] = await one_round(client, base, target, security)
                cpu[name] += cpu_seconds(pid) - before
                walls[name].append(wall)
        batches = max(1, rounds // 10)
        for turn in range(batches):
            for name, base, pid in exporters if turn % 2 == 0 else exporters[::-1]:
                before = cpu_seconds(pid)
                start = time.perf_counter()
                await asyncio.gather(*(one_round(client, base, target, security) for _ in range(concurrent)))
                walls20[name].append(time.perf_counter() - start)
                cpu20[name] += cpu_seconds(pid) - before
    return {name: {"cpu": cpu[name] / rounds, "wall": statistics.median(walls[name]), "pdus": pdus[name],
                   "cpu20": cpu20[name] / (batches * concurrent), "wall20": statistics.median(walls20[name])}
            for name in cpu}


_PYSNMP_ONLY = ("import runpy; from probe_exporter.probers.snmp import engine; "
                "engine.FAST_COMMUNITY_PATH = engine.FAST_V3_PATH = False; "
                "runpy.run_module('probe_exporter', run_name='__main__', alter_sys=True)")


def start_pysnmp_exporter(stack: contextlib.ExitStack, config: Path) -> tuple[str, str, int]:
    port = free_port(socket.SOCK_STREAM)
    proc = stack.enter_context(process([sys.executable, "-c", _PYSNMP_ONLY, f"--config.file={config}",
                                        f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
                                       {**os.environ, "PYTHONPATH": str(REPO)}))
    wait_http(f"http://127.0.0.1:{port}/-/healthy")
    return "pysnmp path", f"http://127.0.0.1:{port}", proc.pid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--only", choices=sorted(AUTHS))
    parser.add_argument("--with-pysnmp", action="store_true")
    args = parser.parse_args()
    if not Path(GO_BINARY).exists():
        sys.exit(f"{GO_BINARY} is not installed: no side-by-side numbers")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_config(root)
        agent_port, go_port, our_port = (free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM),
                                         free_port(socket.SOCK_STREAM))
        agent = start_snmpd(root, agent_port)
        target = f"127.0.0.1:{agent_port}"
        try:
            with contextlib.ExitStack() as stack, process(
                    [sys.executable, "-m", "probe_exporter", f"--config.file={config}",
                     f"--web.listen-address=127.0.0.1:{our_port}", "--log.level=error"],
                    {**os.environ, "PYTHONPATH": str(REPO)}) as ours, process(
                    [GO_BINARY, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{go_port}"]) as go:
                wait_http(f"http://127.0.0.1:{our_port}/-/healthy")
                wait_http(f"http://127.0.0.1:{go_port}/")
                exporters = [("probe_exporter", f"http://127.0.0.1:{our_port}", ours.pid),
                             ("snmp_exporter", f"http://127.0.0.1:{go_port}", go.pid)]
                if args.with_pysnmp:
                    exporters.append(start_pysnmp_exporter(stack, config))
                print(f"{'security':<8} {'exporter':<15} {'PDUs':>5} {'CPU/round':>10} {'wall p50':>9} "
                      f"{'CPU/round @20':>14} {'20 rounds':>10}")
                for security in (s for s in AUTHS if args.only in (None, s)):
                    runs = [e for e in exporters if not (e[0] == "pysnmp path" and security == "v2c")]
                    numbers = asyncio.run(measure(runs, target, security, args.rounds))
                    for name, result in numbers.items():
                        print(f"{security:<8} {name:<15} {result['pdus']:>5.0f} {result['cpu'] * 1000:>8.1f}ms "
                              f"{result['wall'] * 1000:>7.1f}ms {result['cpu20'] * 1000:>12.1f}ms "
                              f"{result['wall20']:>9.2f}s")
                    ours_n, go_n = numbers["probe_exporter"], numbers["snmp_exporter"]
                    print(f"{security:<8} {'ratio':<15} {'':>5} {ours_n['cpu'] / go_n['cpu']:>10.2f} "
                          f"{ours_n['wall'] / go_n['wall']:>9.2f} {ours_n['cpu20'] / go_n['cpu20']:>14.2f} "
                          f"{ours_n['wall20'] / go_n['wall20']:>10.2f}")
        finally:
            agent.terminate()
            agent.wait(10)


if __name__ == "__main__":
    main()

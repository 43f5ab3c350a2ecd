"""if_mib against snmpsim's recorded Cisco switch (59 interfaces, 2,091 varbinds), side by side with
Debian's snmp_exporter 0.21: exporter CPU per scrape, wall time per scrape, varbinds per CPU-second,
and 20/50 concurrent scrapes. Both exporters run as their own processes and load the same
old-format snmp.yml; CPU is read from /proc/PID/stat around the scrapes.

    .venv/bin/python bench/snmp/bench_if_mib.py [--scrapes 10]

Prints a table; asserts nothing. The agent (snmpsim, single-threaded Python) bounds wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.proctree import cpu_seconds  # noqa: E402
from tests.probers.snmp import recordings  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

GO_BINARY = "/usr/bin/prometheus-snmp-exporter"
VARBINDS = 2091


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def wait_http(url: str) -> None:
    for _ in range(300):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def wait_agent(port: int) -> None:
    for _ in range(300):
        done = subprocess.run(["snmpget", "-v2c", "-c", "cisco_16_switch", "-t", "0.3", "-r", "0",
                               f"127.0.0.1:{port}", "1.3.6.1.2.1.1.5.0"], capture_output=True, check=False)
        if done.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("snmpsim did not answer")


RETRIED: list[float] = []


async def scrape(client: httpx.AsyncClient, url: str) -> float:
    start = time.perf_counter()
    response = await client.get(url)
    assert response.status_code == 200, response.text[:300]
    assert "ifNumber 59" in response.text
    for line in response.text.splitlines():
        if line.startswith("snmp_scrape_packets_retried"):
            RETRIED.append(float(line.split()[-1]))
    return time.perf_counter() - start


async def measure(name: str, base: str, pid: int, agent_pid: int, target: str, scrapes: int) -> None:
    url = f"{base}/snmp?target={target}&module=if_mib"
    async with httpx.AsyncClient(timeout=120) as client:
        for _ in range(2):
            await scrape(client, url)  # warm up (engine, plans, caches)
        cpu0, agent0 = cpu_seconds(pid), cpu_seconds(agent_pid)
        walls = [await scrape(client, url) for _ in range(scrapes)]
        cpu = (cpu_seconds(pid) - cpu0) / scrapes
        agent = (cpu_seconds(agent_pid) - agent0) / scrapes
        print(f"{name:<16} sequential x{scrapes}: wall p50 {statistics.median(walls) * 1000:7.1f} ms  "
              f"min {min(walls) * 1000:7.1f}  exporter CPU {cpu * 1000:6.1f} ms/scrape  "
              f"{VARBINDS / cpu if cpu else float('inf'):9.0f} varbinds/CPU-s  agent CPU {agent * 1000:6.1f} ms")
        for concurrency in (20, 50):
            RETRIED.clear()
            cpu0 = cpu_seconds(pid)
            start = time.perf_counter()
            walls = await asyncio.gather(*(scrape(client, url) for _ in range(concurrency)))
            total = time.perf_counter() - start
            cpu = (cpu_seconds(pid) - cpu0) / concurrency
            print(f"{name:<16} {concurrency} concurrent: total {total:6.2f} s  latency p50 "
                  f"{statistics.median(walls):6.2f} s max {max(walls):6.2f} s  "
                  f"exporter CPU {cpu * 1000:6.1f} ms/scrape  packets retried {sum(RETRIED):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=10)
    args = parser.parse_args()
    responder = Path(sys.executable).with_name("snmpsim-command-responder")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        (root / "cache").mkdir()
        recordings.write_cisco_16_switch(root / "data")
        generated = yaml.load(recordings.shared_snmp_yml().read_bytes(), Loader=yaml.CSafeLoader)
        module = dict(generated["modules"]["if_mib"], version=2, auth={"community": "cisco_16_switch"})
        config = root / "snmp021.yml"
        config.write_text(yaml.safe_dump({"if_mib": module}, sort_keys=False))
        agent_port, go_port, our_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM), free_port(
            socket.SOCK_STREAM)
        env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
        with process([str(responder), f"--data-dir={root / 'data'}", f"--cache-dir={root / 'cache'}",
                      f"--agent-udpv4-endpoint=127.0.0.1:{agent_port}", "--logging-method=null"], env) as agent:
            wait_agent(agent_port)
            target = f"127.0.0.1:{agent_port}"
            with process([sys.executable, "-m", "probe_exporter", f"--config.file={config}",
                          f"--web.listen-address=127.0.0.1:{our_port}", "--log.level=error"],
                         {**os.environ, "PYTHONPATH": str(REPO)}) as ours:
                wait_http(f"http://127.0.0.1:{our_port}/-/healthy")
                asyncio.run(measure("probe_exporter", f"http://127.0.0.1:{our_port}", ours.pid, agent.pid, target,
                                    args.scrapes))
            if Path(GO_BINARY).exists():
                with process([GO_BINARY, f"--config.file={config}",
                              f"--web.listen-address=127.0.0.1:{go_port}"]) as go:
                    wait_http(f"http://127.0.0.1:{go_port}/")
                    asyncio.run(measure("snmp_exporter", f"http://127.0.0.1:{go_port}", go.pid, agent.pid, target,
                                        args.scrapes))
            else:
                print(f"{GO_BINARY} not installed: no side-by-side numbers")


if __name__ == "__main__":
    main()

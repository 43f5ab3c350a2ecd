"""Per-probe cost of the tcp, dns, icmp and grpc probers, in-process against local servers.

    .venv/bin/python bench/network/run.py [--probes 2000] [--concurrency 50]

For each module: probes per second and CPU milliseconds per probe (exporter side; the servers run in
the same process, so CPU includes them: read the numbers as an upper bound), sequential and with
`--concurrency` probes in flight. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, for probe_exporter and tests

from probe_exporter.config import Module
from probe_exporter.pipeline import run_probe
from tests.support.dns_server import dns_server
from tests.support.grpc_server import grpc_health_server
from tests.support.tcp_servers import make_pki, serve, ssh_banner


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)


async def _measure(module: Module, target: str, probes: int, concurrency: int) -> tuple[float, float, int]:
    semaphore = asyncio.Semaphore(concurrency)
    failures = 0

    async def one() -> None:
        nonlocal failures
        async with semaphore:
            outcome = await run_probe("bench", module, target, 5.0)
            failures += not outcome.success

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(probes)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return probes / wall, cpu / probes * 1000, failures


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    pki = make_pki(Path(tempfile.mkdtemp()))
    async with contextlib.AsyncExitStack() as stack:
        ssh = await stack.enter_async_context(serve(ssh_banner))
        tls = await stack.enter_async_context(serve(_silent, ssl_context=pki.server_context()))
        dns = await stack.enter_async_context(dns_server())
        grpc = await stack.enter_async_context(grpc_health_server())
        grpc_tls = await stack.enter_async_context(grpc_health_server(pki=pki))
        tls_config = {"ca_file": pki.ca_file, "server_name": "localhost"}
        cases = [
            ("tcp connect", {"prober": "tcp", "tcp": {"preferred_ip_protocol": "ip4"}}, f"127.0.0.1:{ssh}"),
            ("tcp ssh_banner", {"prober": "tcp", "tcp": {"preferred_ip_protocol": "ip4", "query_response": [
                {"expect": "^SSH-2.0-"}, {"send": "SSH-2.0-blackbox-ssh-check"}]}}, f"127.0.0.1:{ssh}"),
            ("tcp tls", {"prober": "tcp", "tcp": {"preferred_ip_protocol": "ip4", "tls": True,
                                                  "tls_config": tls_config}}, f"127.0.0.1:{tls}"),
            ("dns udp", {"prober": "dns", "dns": {"preferred_ip_protocol": "ip4", "query_name": "www.example.test",
                                                  "query_type": "A"}}, f"127.0.0.1:{dns.port}"),
            ("dns tcp", {"prober": "dns", "dns": {"preferred_ip_protocol": "ip4", "query_name": "www.example.test",
                                                  "query_type": "A", "transport_protocol": "tcp"}},
             f"127.0.0.1:{dns.port}"),
            ("icmp", {"prober": "icmp", "icmp": {"preferred_ip_protocol": "ip4"}}, "127.0.0.1"),
            ("grpc plain", {"prober": "grpc", "grpc": {"preferred_ip_protocol": "ip4"}}, f"127.0.0.1:{grpc.port}"),
            ("grpc tls", {"prober": "grpc", "grpc": {"preferred_ip_protocol": "ip4", "tls": True,
                                                    "tls_config": tls_config}}, f"127.0.0.1:{grpc_tls.port}"),
        ]
        print(f"| module | sequential probes/s | CPU ms/probe | {args.concurrency} in flight probes/s "
              "| CPU ms/probe | failures |")
        print("|---|---|---|---|---|---|")
        for name, body, target in cases:
            module = Module.model_validate(body)
            await _measure(module, target, 50, 1)  # warm-up: imports, SSL contexts
            seq_rate, seq_cpu, seq_fail = await _measure(module, target, args.probes // 4, 1)
            par_rate, par_cpu, par_fail = await _measure(module, target, args.probes, args.concurrency)
            print(f"| {name} | {seq_rate:.0f} | {seq_cpu:.2f} | {par_rate:.0f} | {par_cpu:.2f} "
                  f"| {seq_fail + par_fail} |")


if __name__ == "__main__":
    asyncio.run(main())

"""Starting real SNMP agents on loopback for tests and benchmarks: snmpsim with recorded devices
(and net-snmp's snmpd, through `running_agent`)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from probe_exporter.probers.snmp import ber
from tests.probers.snmp import recordings
from tests.support.ports import free_port

SNMPSIM = Path(sys.executable).with_name("snmpsim-command-responder")


def answers(port: int, community: str) -> bool:
    """One v2c GET of sysName.0 on a plain UDP socket: does the agent answer within 0.3 s?"""
    request = ber.encode_request(1, community.encode(), ber.GET, 1, [(1, 3, 6, 1, 2, 1, 1, 5, 0)])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.sendto(request, ("127.0.0.1", port))
        try:
            return ber.decode_response(sock.recv(65535))[2] == 1
        except (TimeoutError, OSError, ber.BerError, IndexError):
            return False


def wait_for_agent(port: int, community: str, process: subprocess.Popen[bytes], name: str) -> None:
    """Poll until the agent answers (snmpsim indexes its data first)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        if answers(port, community):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not answer on 127.0.0.1:{port}")


@contextlib.contextmanager
def running_agent(args: list[str], env: dict[str, str], port: int, community: str, name: str) -> Iterator[str]:
    """Start an agent process; yields `127.0.0.1:PORT` once it answers, stops it afterwards."""
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_agent(port, community, process, name)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def running_snmp_exporter(binary: Path, config_file: Path) -> Iterator[str]:
    """Debian's snmp_exporter on a free loopback port with `config_file`; yields its base URL."""
    port = free_port()
    process = subprocess.Popen([str(binary), f"--config.file={config_file}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError(f"snmp_exporter exited with {process.returncode}")
            time.sleep(0.1)
        else:
            raise RuntimeError(f"snmp_exporter did not answer on 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(5)


@contextlib.contextmanager
def running_snmpsim(root: Path, extra_recordings: dict[str, str] | None = None) -> Iterator[str]:
    """snmpsim serving cisco_16_switch (community `cisco_16_switch`) plus `extra_recordings`
    (community -> .snmprec text); yields `127.0.0.1:PORT`."""
    data, cache = root / "data", root / "cache"
    data.mkdir()
    cache.mkdir()
    recordings.write_cisco_16_switch(data)
    for community, text in (extra_recordings or {}).items():
        (data / f"{community}.snmprec").write_text(text)
    port = free_port(socket.SOCK_DGRAM)
    # SNMPSIM_ALLOW_ROOT: dropping to `nobody` breaks lazy imports when Python lives under /root.
    env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
    with running_agent([str(SNMPSIM), f"--data-dir={data}", f"--cache-dir={cache}",
                        f"--agent-udpv4-endpoint=127.0.0.1:{port}", "--logging-method=null"],
                       env, port, "cisco_16_switch", "snmpsim") as target:
        yield target

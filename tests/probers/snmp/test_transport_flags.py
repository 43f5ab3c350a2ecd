"""snmp_exporter's `tcp://` targets, --snmp.source-address and --snmp.debug-packets against snmpd."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe_exporter.cli import build_parser
from probe_exporter.config import Config, load_config
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.pipeline import run_probe
from probe_exporter.probers.snmp import ber, packets
from probe_exporter.settings import Settings, from_args
from tests.probers.snmp import agents
from tests.probers.snmp.lookup_module import if_status_module
from tests.support.ports import free_port

SECRET = "s3cret-community"


@pytest.fixture(scope="module")
def snmpd_udp_tcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """snmpd on udp:127.0.0.1:P and tcp:127.0.0.1:Q; community SECRET only from 127.0.0.2."""
    snmpd = shutil.which("snmpd") or "/usr/sbin/snmpd"
    if not Path(snmpd).exists():
        pytest.skip("snmpd is not installed (apt-get install snmpd)")
    root = tmp_path_factory.mktemp("snmpd-tcp")
    udp_port, tcp_port = free_port(socket.SOCK_DGRAM), free_port()
    conf = root / "snmpd.conf"
    conf.write_text(f"rocommunity public 127.0.0.1\nrocommunity {SECRET} 127.0.0.2\n")
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(root / "persist"), "MIBS": ""}
    with agents.running_agent([snmpd, "-f", "-Lf", str(root / "snmpd.log"), "-C", "-c", str(conf), "-p",
                               str(root / "snmpd.pid"), "-M", "/nonexistent",
                               f"udp:127.0.0.1:{udp_port},tcp:127.0.0.1:{tcp_port}"], env, udp_port, "public", "snmpd"):
        yield udp_port, tcp_port


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = tmp_path_factory.mktemp("snmp-tcp-config") / "snmp.yml"
    path.write_text(f"auths:\n  public_v2: {{community: public, version: 2}}\n  secret: {{community: {SECRET}}}\n"
                    "  v1: {community: public, version: 1}\n"
                    f"modules:\n  if_status:\n{if_status_module()}    timeout: 500ms\n    retries: 1\n")
    return load_config([str(path)])


async def _probe(config: Config, target: str, settings: Settings | None = None, timeout: float = 3.0,
                 **params: str) -> tuple[bool, str, str]:
    outcome = await run_probe("if_status", config.modules["if_status"], target, timeout, params, config, settings)
    return outcome.success, render_text(collect_sorted([outcome.metrics])).decode(), outcome.log.text()


@pytest.mark.parametrize("auth", ["public_v2", "v1"])
async def test_tcp_target(config: Config, snmpd_udp_tcp: tuple[int, int], auth: str) -> None:
    udp_port, tcp_port = snmpd_udp_tcp
    success, text, log = await _probe(config, f"tcp://127.0.0.1:{tcp_port}", auth=auth)
    assert success, log
    over_udp = await _probe(config, f"127.0.0.1:{udp_port}", auth=auth)
    samples = [line for line in text.splitlines() if line.startswith("ifOperStatus{")]
    assert samples and samples == [line for line in over_udp[1].splitlines() if line.startswith("ifOperStatus{")]


async def test_tcp_target_refused_fails_with_a_reason(config: Config) -> None:
    success, _, log = await _probe(config, f"tcp://127.0.0.1:{free_port()}")
    assert not success
    assert "error connecting to target" in log and "refused" in log.lower()


async def test_tcp_target_that_closes_fails_with_a_reason(config: Config) -> None:
    with socket.socket() as server:  # accepts and closes at once: not an SNMP agent
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        success, _, log = await _probe(config, f"tcp://127.0.0.1:{port}", timeout=1.5)
    assert not success
    assert "connection closed by target" in log or "timeout" in log


@pytest.mark.parametrize("transport", ["", "tcp://"])
async def test_source_address(config: Config, snmpd_udp_tcp: tuple[int, int], transport: str) -> None:
    udp_port, tcp_port = snmpd_udp_tcp
    target = f"{transport}127.0.0.1:{tcp_port if transport else udp_port}"
    # snmpd answers SECRET only from 127.0.0.2: from the default source the request is dropped.
    success, _, log = await _probe(config, target, Settings(), timeout=1.5, auth="secret")
    assert not success, log
    success, _, log = await _probe(config, target, Settings(snmp_source_address="127.0.0.2:0"), auth="secret")
    assert success, log
    success, _, log = await _probe(config, target, Settings(snmp_source_address="127.0.0.2:"), auth="secret")
    assert success, log


@pytest.mark.parametrize("how", ["flag", "parameter"])
async def test_debug_packets_masks_the_community(config: Config, snmpd_udp_tcp: tuple[int, int], how: str) -> None:
    udp_port, _ = snmpd_udp_tcp
    settings = Settings(snmp_source_address="127.0.0.2:0", snmp_debug_packets=how == "flag")
    parameter = "true" if how == "parameter" else "false"  # anything but `true` leaves it to the flag
    success, _, log = await _probe(config, f"127.0.0.1:{udp_port}", settings, auth="secret",
                                   snmp_debug_packets=parameter)
    assert success, log
    sent = [line for line in log.splitlines() if "SNMP packet sent" in line]
    received = [line for line in log.splitlines() if "SNMP packet received" in line]
    assert len(sent) >= 4 and len(received) == len(sent)
    assert all(f"to=127.0.0.1:{udp_port}" in line for line in sent)
    masked = " ".join([packets.MASK] * len(SECRET))
    assert all(masked in line for line in sent + received)
    assert SECRET.encode().hex(" ") not in log and SECRET not in log
    success, _, quiet = await _probe(config, f"127.0.0.1:{udp_port}", Settings(snmp_source_address="127.0.0.2:0"),
                                     auth="secret", snmp_debug_packets="false")
    assert success and "SNMP packet" not in quiet


async def test_debug_packets_masks_the_v3_hmac(snmpd_agent: str, shared_snmp_yml: Path,
                                               test_auths_yml: Path) -> None:
    full = load_config([str(shared_snmp_yml), str(test_auths_yml)])
    outcome = await run_probe("system", full.modules["system"], snmpd_agent, 5.0,
                              {"auth": "v3sha_aes", "snmp_debug_packets": "true"}, full)
    log = outcome.log.text()
    assert outcome.success, log
    lines = [line for line in log.splitlines() if "SNMP packet" in line]
    assert len(lines) >= 4  # discovery and its report, then the walk
    hmac = " ".join([packets.MASK] * 12)  # HMAC-SHA-96
    authenticated = [line for line in lines if hmac in line]
    assert authenticated and len(authenticated) >= len(lines) - 2  # all but discovery's pair
    assert b"authpass123".hex(" ") not in log and b"privpass123".hex(" ") not in log


def test_masked_hex_of_a_request() -> None:
    data = ber.encode_request(1, b"abc", ber.GET, 7, [(1, 3, 6, 1)])
    text = packets.masked_hex(data)
    assert "04 03 ** ** **" in text and "61 62 63" not in text
    assert packets.masked_hex(b"\xff\x01") == "** **"  # undecodable: masked whole


def test_flags_parse_and_refuse() -> None:
    settings = from_args(build_parser().parse_args(["--snmp.source-address", "[::1]:", "--snmp.debug-packets",
                                                    "--snmp.lookup-cache", "1h", "--snmp.lookup-cache-size", "5"]))
    assert (settings.snmp_source_address, settings.snmp_debug_packets) == ("[::1]:", True)
    assert (settings.snmp_lookup_cache, settings.snmp_lookup_cache_size) == (3600.0, 5)
    for bad in (["--snmp.source-address", "localhost:0"], ["--snmp.source-address", "127.0.0.1:99999"],
                ["--snmp.lookup-cache", "soon"], ["--snmp.lookup-cache-size", "0"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)

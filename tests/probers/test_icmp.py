"""The icmp prober on loopback: raw and unprivileged sockets, TTL/DF on the wire, failure paths.

Where the test needs conditions the host does not offer (ping sockets allowed, an address that
never answers, no route at all) it runs the probe in a private network namespace (`unshare -n`).
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from probe_exporter.config import Module
from probe_exporter.probers import icmp
from tests.support.forking import in_forked_child
from tests.support.network_probe import (
    ADDRESS_METRICS,
    ALWAYS,
    LOOPBACK_V4_HASH,
    label_sets,
    log_text,
    names,
    probe,
    value,
)

ICMP_METRICS = {"probe_icmp_duration_seconds", "probe_icmp_reply_hop_limit"}
REPO = Path(__file__).resolve().parents[2]


def ping_sockets_allowed() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize(("target", "protocol"), [("127.0.0.1", 4), ("::1", 6)])
async def test_echo_loopback(target: str, protocol: int) -> None:
    outcome = await probe({"prober": "icmp"}, target)
    assert outcome.success, log_text(outcome)
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | ICMP_METRICS
    assert value(outcome, "probe_ip_protocol") == protocol
    assert value(outcome, "probe_icmp_reply_hop_limit") == 64
    phases = {labels["phase"] for labels in label_sets(outcome, "probe_icmp_duration_seconds")}
    assert phases == {"resolve", "setup", "rtt"}
    assert value(outcome, "probe_icmp_duration_seconds", phase="rtt") > 0
    if protocol == 4:
        assert value(outcome, "probe_ip_addr_hash") == LOOPBACK_V4_HASH


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
async def test_raw_socket_path(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    monkeypatch.setattr(icmp, "TRY_UNPRIVILEGED", False)
    outcome = await probe({"prober": "icmp"}, target)
    assert outcome.success, log_text(outcome)
    assert "privileged=True" in log_text(outcome)
    assert "will attempt privileged" not in log_text(outcome)


async def test_falls_back_to_raw_when_ping_sockets_are_refused() -> None:
    outcome = await probe({"prober": "icmp"}, "127.0.0.1")
    assert outcome.success, log_text(outcome)
    if ping_sockets_allowed():
        assert "privileged=False" in log_text(outcome)
    else:
        assert "Unable to do unprivileged listen on socket, will attempt privileged" in log_text(outcome)
        assert "privileged=True" in log_text(outcome)


def _sniffed_echo_requests(sniffer: socket.socket) -> list[bytes]:
    packets = []
    while True:
        try:
            packet = sniffer.recv(65536)
        except BlockingIOError:
            return packets
        header_length = (packet[0] & 0x0F) * 4
        if packet[header_length] == 8 and icmp.PAYLOAD in packet:
            packets.append(packet)


async def test_ttl_and_dont_fragment_on_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    """A raw socket sees our echo request with its IP header: TTL and the DF bit as configured."""
    sniffer = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sniffer.setblocking(False)
    try:
        plain = await probe({"prober": "icmp", "icmp": {"ttl": 5}}, "127.0.0.1")
        plain_packets = _sniffed_echo_requests(sniffer)
        df = await probe({"prober": "icmp", "icmp": {"dont_fragment": True, "payload_size": 1400}}, "127.0.0.1")
        df_packets = _sniffed_echo_requests(sniffer)
    finally:
        sniffer.close()
    assert plain.success and df.success, log_text(plain) + log_text(df)
    assert [packet[8] for packet in plain_packets] == [5]
    assert [packet[8] for packet in df_packets] == [64]
    assert df_packets[0][6] & 0x40  # DF
    assert len(df_packets[0]) == 20 + 8 + 1400
    assert "privileged=True" in log_text(df)  # DF always takes the raw socket


async def test_source_ip_address() -> None:
    outcome = await probe({"prober": "icmp", "icmp": {"source_ip_address": "127.0.0.2"}}, "127.0.0.1")
    assert outcome.success, log_text(outcome)
    bad = await probe({"prober": "icmp", "icmp": {"source_ip_address": "192.0.2.99"}}, "127.0.0.1")
    assert not bad.success
    assert "Error listening to socket" in log_text(bad)


def test_payload() -> None:
    assert icmp.payload(0) == b"Prometheus Blackbox Exporter"
    assert icmp.payload(10) == b"Prometheus"
    assert icmp.payload(32) == b"Prometheus Blackbox Exporter\0\0\0\0"


def test_checksum_of_an_echo_request_verifies() -> None:
    packet = icmp.echo_request(False, 0x1234, 7, icmp.PAYLOAD)
    assert icmp.checksum(packet) == 0
    assert struct.unpack("!BBHHH", packet[:8])[3:] == (0x1234, 7)


async def test_resolution_failure() -> None:
    outcome = await probe({"prober": "icmp"}, "no-such-host.invalid")
    assert not outcome.success
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | {"probe_icmp_duration_seconds"}
    assert value(outcome, "probe_icmp_duration_seconds", phase="rtt") == 0


async def test_sequence_advances() -> None:
    first = await probe({"prober": "icmp"}, "127.0.0.1")
    second = await probe({"prober": "icmp"}, "127.0.0.1")

    def seq(outcome: object) -> int:
        line = next(line for line in log_text(outcome).splitlines() if "Creating ICMP packet" in line)
        return int(line.split(" seq=")[1].split()[0])

    assert (seq(second) - seq(first)) % 65536 == 1


@pytest.mark.parametrize(("ttl", "message"), [(-1, '"ttl" cannot be negative'), (256, '"ttl" cannot exceed 255')])
def test_ttl_bounds(ttl: int, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Module.model_validate({"prober": "icmp", "icmp": {"ttl": ttl}})


# --- in a private network namespace ----------------------------------------------------------------

NETNS_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys
    sys.path.insert(0, sys.argv[1])
    from tests.support.network_probe import probe, names

    async def main():
        results = {}
        for target, block in [("127.0.0.1", {}), ("::1", {}), ("10.9.0.2", {"preferred_ip_protocol": "ip4"}),
                              ("198.51.100.1", {"preferred_ip_protocol": "ip4"})]:
            outcome = await probe({"prober": "icmp", "icmp": block}, target, timeout=0.4)
            results[target] = {"success": outcome.success, "reason": outcome.reason, "duration": outcome.duration,
                               "names": sorted(names(outcome)), "log": outcome.log.text()}
        print(json.dumps(results))

    asyncio.run(main())
""")


@pytest.fixture(scope="module")
def netns_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("ip") is None:
        pytest.skip("unshare/ip not installed: cannot build a private network namespace")
    script = tmp_path_factory.mktemp("netns") / "probe.py"
    script.write_text(NETNS_SCRIPT)
    # lo up, ping sockets allowed for every group, and 10.9.0.0/24 routed into lo where nothing answers.
    setup = ("{ ip link set lo up && echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range && "
             "ip route add 10.9.0.0/24 dev lo; } || exit 97; exec \"$0\" \"$@\"")
    try:
        result = subprocess.run([unshare, "-n", "sh", "-c", setup, sys.executable, str(script), str(REPO)],
                                capture_output=True, text=True, timeout=30, check=False)
    except OSError as err:
        pytest.skip(f"cannot run unshare: {err}")
    if result.returncode == 97 or (result.returncode != 0 and result.stderr.startswith("unshare")):
        pytest.skip(f"no permission to set up a private network namespace: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
def test_unprivileged_ping_socket(netns_results: dict[str, dict[str, object]], target: str) -> None:
    result = netns_results[target]
    assert result["success"], result["log"]
    assert "privileged=False" in str(result["log"])
    assert "probe_icmp_reply_hop_limit" in result["names"]  # type: ignore[operator]


def test_no_reply_times_out_inside_deadline(netns_results: dict[str, dict[str, object]]) -> None:
    result = netns_results["10.9.0.2"]
    assert not result["success"]
    assert float(result["duration"]) < 0.6  # type: ignore[arg-type]
    assert "Timeout reading from socket" in str(result["log"])
    assert set(result["names"]) == ALWAYS | ADDRESS_METRICS | {"probe_icmp_duration_seconds"}  # type: ignore[arg-type]


def test_unreachable_fails_at_once(netns_results: dict[str, dict[str, object]]) -> None:
    result = netns_results["198.51.100.1"]
    assert not result["success"]
    assert float(result["duration"]) < 0.1  # type: ignore[arg-type]
    assert "Error writing to socket: Network is unreachable" in str(result["reason"])


def test_a_forked_worker_numbers_its_echoes_from_its_own_start() -> None:
    """Workers inheriting their parent's sequence would number their echoes in step."""
    def next_sequences() -> bytes:
        return struct.pack("!3Q", *(next(icmp._sequence) for _ in range(3)))

    assert in_forked_child(next_sequences) != next_sequences()

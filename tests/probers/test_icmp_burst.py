"""Burst ICMP (`icmp: packets: N`): loss, duplicates and round-trip statistics in one probe.

On loopback for IPv4 and IPv6; loss and duplicates come from nftables rules in a private network
namespace (`unshare -n`), where ping sockets are also allowed, so the unprivileged path is covered
too. The default of one packet is covered by test_icmp.py: its metric set must not change.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from probe_exporter.config import ConfigError, Module, load_config
from probe_exporter.config.render import module_as_yaml
from probe_exporter.pipeline import ProbeOutcome
from probe_exporter.probers import icmp
from tests.support.network_probe import ADDRESS_METRICS, ALWAYS, log_text, names, probe, samples, text, value
from tests.support.promtool import promtool_problems

BURST_COUNTS = {"probe_icmp_packets_sent", "probe_icmp_packets_received", "probe_icmp_duplicate_packets"}
RTT_STATS = {"probe_icmp_rtt_min_seconds", "probe_icmp_rtt_max_seconds", "probe_icmp_rtt_mean_seconds",
             "probe_icmp_rtt_stddev_seconds"}
HISTOGRAM = {"probe_icmp_rtt_seconds_bucket", "probe_icmp_rtt_seconds_sum", "probe_icmp_rtt_seconds_count"}
REPO = Path(__file__).resolve().parents[2]


def burst(packets: int, interval: str = "10ms", **extra: object) -> dict[str, object]:
    return {"prober": "icmp", "icmp": {"packets": packets, "packet_interval": interval, **extra}}


def buckets(outcome: ProbeOutcome) -> dict[str, float]:
    return {dict(labels)["le"]: v for (name, labels), v in samples(outcome).items()
            if name == "probe_icmp_rtt_seconds_bucket"}


@pytest.mark.parametrize(("target", "protocol"), [("127.0.0.1", 4), ("::1", 6)])
async def test_burst_on_loopback(target: str, protocol: int) -> None:
    outcome = await probe(burst(5, rtt_buckets=[0.5, 1, 2]), target)
    assert outcome.success, log_text(outcome)
    assert names(outcome) == (ALWAYS | ADDRESS_METRICS | BURST_COUNTS | RTT_STATS | HISTOGRAM
                              | {"probe_icmp_duration_seconds", "probe_icmp_reply_hop_limit"})
    assert value(outcome, "probe_ip_protocol") == protocol
    assert value(outcome, "probe_icmp_packets_sent") == 5
    assert value(outcome, "probe_icmp_packets_received") == 5
    assert value(outcome, "probe_icmp_duplicate_packets") == 0
    low, mean, high = (value(outcome, f"probe_icmp_rtt_{s}_seconds") for s in ("min", "mean", "max"))
    assert 0 < low <= mean <= high
    assert 0 <= value(outcome, "probe_icmp_rtt_stddev_seconds") <= high - low
    assert value(outcome, "probe_icmp_duration_seconds", phase="rtt") == pytest.approx(mean)
    # Loopback answers well inside half a second: every reply is in the first bucket.
    assert buckets(outcome) == {"0.5": 5, "1": 5, "2": 5, "+Inf": 5}
    assert value(outcome, "probe_icmp_rtt_seconds_count") == 5
    assert value(outcome, "probe_icmp_rtt_seconds_sum") == pytest.approx(mean * 5)
    assert value(outcome, "probe_icmp_reply_hop_limit") == 64


async def test_burst_page_passes_promtool() -> None:
    outcome = await probe(burst(3), "127.0.0.1")
    assert outcome.success, log_text(outcome)
    assert promtool_problems(text(outcome)) == []


async def test_default_buckets_are_smokeping_probers() -> None:
    outcome = await probe(burst(2), "127.0.0.1")
    assert outcome.success, log_text(outcome)
    bounds = list(buckets(outcome))
    assert bounds[0] == "5e-05" and bounds[-2] == "26.2144" and bounds[-1] == "+Inf"
    assert len(bounds) == 21


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
async def test_raw_socket_burst(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    monkeypatch.setattr(icmp, "TRY_UNPRIVILEGED", False)
    outcome = await probe(burst(4), target)
    assert outcome.success, log_text(outcome)
    assert "privileged=True" in log_text(outcome)
    assert value(outcome, "probe_icmp_packets_received") == 4


async def test_concurrent_bursts_count_only_their_own_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every raw ICMP socket sees every echo reply on the host: the ID and sequence keep them apart."""
    monkeypatch.setattr(icmp, "TRY_UNPRIVILEGED", False)
    outcomes = await asyncio.gather(*(probe(burst(6, "5ms"), "127.0.0.1") for _ in range(3)))
    for outcome in outcomes:
        assert outcome.success, log_text(outcome)
        assert value(outcome, "probe_icmp_packets_received") == 6
        assert value(outcome, "probe_icmp_duplicate_packets") == 0


async def test_burst_stops_sending_when_the_deadline_nears() -> None:
    """No module timeout to check at load: the probe's own deadline (a scrape timeout) cuts the burst."""
    outcome = await probe(burst(50, "100ms"), "127.0.0.1", timeout=0.5)
    assert outcome.success, log_text(outcome)  # it reported, rather than being cut off by the deadline
    sent = value(outcome, "probe_icmp_packets_sent")
    assert 1 <= sent < 50
    assert value(outcome, "probe_icmp_packets_received") == sent
    assert "Stopped the burst before the deadline" in log_text(outcome)


async def test_a_deadline_shorter_than_one_interval_still_sends_the_first_packet() -> None:
    outcome = await probe(burst(5, "10s"), "127.0.0.1", timeout=0.5)
    assert outcome.success, log_text(outcome)
    assert value(outcome, "probe_icmp_packets_sent") == 1
    assert value(outcome, "probe_icmp_packets_received") == 1


async def test_single_packet_keeps_the_upstream_metric_set() -> None:
    outcome = await probe({"prober": "icmp", "icmp": {"packets": 1, "packet_interval": "1s"}}, "127.0.0.1")
    assert outcome.success, log_text(outcome)
    assert names(outcome) == ALWAYS | ADDRESS_METRICS | {"probe_icmp_duration_seconds",
                                                         "probe_icmp_reply_hop_limit"}


# --- config ----------------------------------------------------------------------------------------


def test_a_burst_longer_than_the_module_timeout_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "blackbox.yml"
    path.write_text("modules:\n  ping:\n    prober: icmp\n    timeout: 1s\n    icmp:\n"
                    "      packets: 20\n      packet_interval: 100ms\n")
    with pytest.raises(ConfigError) as caught:
        load_config([str(path)])
    assert str(caught.value) == (
        f"error parsing config file: {path}:6: modules.ping.icmp.packets: 20 packets every 100ms take 2s, "
        "longer than the module timeout 1s; lower packets or packet_interval, or raise timeout")


def test_a_burst_that_fits_loads() -> None:
    module = Module.model_validate(burst(10, "100ms") | {"timeout": "1s"})
    assert module.icmp.packets == 10
    assert module.icmp.packet_interval == 0.1


@pytest.mark.parametrize(("block", "message"), [
    ({"packets": 0}, '"packets" must be between 1 and 65535'),
    ({"packets": 70000}, '"packets" must be between 1 and 65535'),
    ({"packet_interval": "0s"}, '"packet_interval" must be greater than 0'),
    ({"rtt_buckets": [0.1, 0.1]}, '"rtt_buckets" must be positive and strictly increasing'),
    ({"rtt_buckets": []}, '"rtt_buckets" must be positive and strictly increasing'),
    ({"rtt_buckets": [-1, 1]}, '"rtt_buckets" must be positive and strictly increasing'),
])
def test_bad_burst_settings(block: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Module.model_validate({"prober": "icmp", "icmp": block})


def test_config_page_shows_burst_keys_only_when_set() -> None:
    plain = module_as_yaml(Module.model_validate({"prober": "icmp"}))
    assert "packet" not in plain and "rtt_buckets" not in plain
    shown = module_as_yaml(Module.model_validate(burst(5)))
    assert "packets: 5" in shown and "packet_interval: 10ms" in shown


# --- loss and duplicates, in a private network namespace -------------------------------------------

# Every 4th echo request to 127.0.0.1 and ::1 is dropped on the way out; requests to 127.0.0.2 are
# duplicated, so each gets two replies; 10.9.0.0/24 is routed into lo, where nothing answers.
NFT_RULES = """
table inet burst_test {
  chain out {
    type filter hook output priority 0;
    ip daddr 127.0.0.1 icmp type echo-request numgen inc mod 4 == 0 drop
    ip6 daddr ::1 icmpv6 type echo-request numgen inc mod 4 == 0 drop
  }
}
table ip burst_test_dup {
  chain out {
    type filter hook output priority 0;
    ip daddr 127.0.0.2 icmp type echo-request dup to 127.0.0.2
  }
}
"""

NETNS_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys
    sys.path.insert(0, sys.argv[1])
    from tests.support.network_probe import probe, samples

    async def main():
        results = {}
        for target in ("127.0.0.1", "::1", "127.0.0.2", "10.9.0.2", "198.51.100.1"):
            block = {"packets": 8, "packet_interval": "10ms", "preferred_ip_protocol": "ip4"}
            outcome = await probe({"prober": "icmp", "icmp": block}, target, timeout=1.0)
            results[target] = {"success": outcome.success, "reason": outcome.reason, "log": outcome.log.text(),
                               "metrics": {name: v for (name, labels), v in samples(outcome).items() if not labels}}
        print(json.dumps(results))

    asyncio.run(main())
""")


@pytest.fixture(scope="module")
def lossy_netns(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    for tool in ("unshare", "ip", "nft"):
        if shutil.which(tool) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{tool} missing: .ci/run installs the Debian package nftables")
            pytest.skip(f"{tool} not installed: cannot simulate loss with nftables in a network namespace")
    directory = tmp_path_factory.mktemp("burst_netns")
    (directory / "probe.py").write_text(NETNS_SCRIPT)
    (directory / "rules.nft").write_text(NFT_RULES)
    setup = ("{ ip link set lo up && echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range && "
             "ip route add 10.9.0.0/24 dev lo && nft -f \"$1\"; } || exit 97; shift; exec \"$0\" \"$@\"")
    result = subprocess.run(["unshare", "-n", "sh", "-c", setup, sys.executable, str(directory / "rules.nft"),
                             str(directory / "probe.py"), str(REPO)],
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode == 97 or (result.returncode != 0 and result.stderr.startswith("unshare")):
        pytest.skip(f"no permission to set up a network namespace with nftables: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
def test_loss_is_counted(lossy_netns: dict[str, dict[str, object]], target: str) -> None:
    result = lossy_netns[target]
    metrics = result["metrics"]
    assert result["success"], result["log"]
    assert "privileged=False" in str(result["log"])  # the kernel's ping socket, replies matched by its ID
    assert metrics["probe_icmp_packets_sent"] == 8  # type: ignore[index]
    assert metrics["probe_icmp_packets_received"] == 6  # type: ignore[index]
    assert metrics["probe_icmp_duplicate_packets"] == 0  # type: ignore[index]
    assert metrics["probe_icmp_rtt_seconds_count"] == 6  # type: ignore[index]


def test_duplicates_are_counted_apart(lossy_netns: dict[str, dict[str, object]]) -> None:
    result = lossy_netns["127.0.0.2"]
    metrics = result["metrics"]
    assert result["success"], result["log"]
    assert metrics["probe_icmp_packets_received"] == 8  # type: ignore[index]
    assert metrics["probe_icmp_duplicate_packets"] == 8  # type: ignore[index]
    assert metrics["probe_icmp_rtt_seconds_count"] == 8  # type: ignore[index]


def test_total_loss_fails_with_the_counts(lossy_netns: dict[str, dict[str, object]]) -> None:
    result = lossy_netns["10.9.0.2"]
    metrics = result["metrics"]
    assert not result["success"]
    assert result["reason"] == ("Timeout reading from socket: no echo reply to any of 8 packets before the "
                                "probe deadline")
    assert metrics["probe_icmp_packets_sent"] == 8  # type: ignore[index]
    assert metrics["probe_icmp_packets_received"] == 0  # type: ignore[index]
    assert not RTT_STATS & set(metrics)  # type: ignore[arg-type]


def test_unreachable_burst_fails_at_once(lossy_netns: dict[str, dict[str, object]]) -> None:
    result = lossy_netns["198.51.100.1"]
    assert not result["success"]
    assert result["reason"] == "Error writing to socket: Network is unreachable"
    assert "Waiting for reply packets" not in str(result["log"])

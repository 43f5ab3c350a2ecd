"""Sharding: two exporter replicas, two Prometheus servers, one `hashmod` shard each over one target list.

Each Prometheus runs the example's probe-http job over the same ten targets, with two relabel rules in
front (hashmod of __address__, modulus 2, keep this server's shard) and __address__ pointed at its own
exporter replica. Every target must be probed by exactly one shard, and losing one replica must only
affect its shard. The pattern is documented for users in docs/deployment.md, section Sharding.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port
from tests.support.processes import http_get, running, stop_process
from tests.support.prometheus_stack import (
    ProbeJob,
    Prometheus,
    derive_job,
    exporter_argv,
    load_example,
    prometheus_url,
    self_metrics_jobs,
    start_prometheus,
)

SHARDS = 2
TARGETS_PER_SHARD = 5
JOB = "probe-http"
SELF_JOB = "probe-exporter"
SCRAPED_WITHIN_SECONDS = 20.0


def hashmod(value: str, modulus: int) -> int:
    """Prometheus' hashmod relabel action: the last 8 bytes of the MD5 of the value, big-endian, mod N."""
    return int.from_bytes(hashlib.md5(value.encode()).digest()[8:], "big") % modulus


def shard_rules(shard: int) -> list[dict[str, Any]]:
    """The two rules that put in front of a probe job's relabel_configs make it one shard of N."""
    return [
        {"source_labels": ["__address__"], "modulus": SHARDS, "target_label": "__tmp_hash", "action": "hashmod"},
        {"source_labels": ["__tmp_hash"], "regex": str(shard), "action": "keep"},
    ]


def pick_targets(base_url: str) -> list[str]:
    """Distinct URLs of one local server, TARGETS_PER_SHARD in each shard (the port is random, so which
    path lands where is computed, not assumed)."""
    by_shard: dict[int, list[str]] = {shard: [] for shard in range(SHARDS)}
    index = 0
    while min(len(targets) for targets in by_shard.values()) < TARGETS_PER_SHARD:
        url = f"{base_url}/shard-target/{index}"
        shard_targets = by_shard[hashmod(url, SHARDS)]
        if len(shard_targets) < TARGETS_PER_SHARD:
            shard_targets.append(url)
        index += 1
    return sorted(url for targets in by_shard.values() for url in targets)


def sharded_prometheus_config(shard: int, targets: list[str], exporter_address: str) -> dict[str, Any]:
    example = load_example()
    job = derive_job(example, ProbeJob(JOB, dict.fromkeys(targets, 1)), exporter_address)
    job["relabel_configs"] = shard_rules(shard) + copy.deepcopy(job["relabel_configs"])
    return {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [job, *self_metrics_jobs(example, exporter_address)]}


@dataclass
class Shard:
    index: int
    exporter_address: str
    exporter: Any  # subprocess.Popen
    prometheus: Prometheus

    def probed_targets(self) -> dict[str, float]:
        return {instance: value for (job, instance), value in self.prometheus.values("probe_success").items()
                if job == JOB}


@pytest.fixture(scope="module")
def shards(prometheus_binary: str, plain_http_target: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], list[Shard]]]:
    targets = pick_targets(plain_http_target)
    workdir: Path = tmp_path_factory.mktemp("e2e-sharding")
    with contextlib.ExitStack() as stack:
        started: list[Shard] = []
        for index in range(SHARDS):
            address = f"127.0.0.1:{free_port()}"
            exporter = stack.enter_context(running(exporter_argv(address), workdir / f"exporter-{index}.log",
                                                   f"http://{address}/-/healthy"))
            prometheus = stack.enter_context(start_prometheus(
                prometheus_binary, workdir / f"prometheus-{index}", sharded_prometheus_config(index, targets, address)))
            started.append(Shard(index, address, exporter, Prometheus(prometheus_url(prometheus))))
        yield targets, started


def _wait_for_shards(targets: list[str], shards: list[Shard]) -> None:
    deadline = time.monotonic() + SCRAPED_WITHIN_SECONDS
    while True:
        probed = [set(shard.probed_targets()) for shard in shards]
        if set().union(*probed) >= set(targets) or time.monotonic() > deadline:
            return
        time.sleep(0.5)


def test_each_target_is_probed_by_exactly_one_shard(shards: tuple[list[str], list[Shard]]) -> None:
    targets, replicas = shards
    _wait_for_shards(targets, replicas)
    probed = {shard.index: shard.probed_targets() for shard in replicas}
    for target in targets:
        owners = [index for index, series in probed.items() if target in series]
        assert owners == [hashmod(target, SHARDS)], f"{target}: probed by shards {owners}"
    for shard in replicas:
        assert len(probed[shard.index]) == TARGETS_PER_SHARD
        assert set(probed[shard.index].values()) == {1.0}, f"shard {shard.index}: {probed[shard.index]}"

    # The exporters' side: each replica's history has probes of its own shard's targets only, and its
    # probe counter covers every scrape its Prometheus stored.
    for shard in replicas:
        for target in targets:
            query = urllib.parse.urlencode({"target": target, "module": "http_2xx"})
            status, _ = http_get(f"http://{shard.exporter_address}/logs?{query}")
            expected = 200 if hashmod(target, SHARDS) == shard.index else 404
            assert status == expected, f"exporter {shard.index} /logs for {target}: {status}"
        scrapes = sum(shard.prometheus.values(f'count_over_time(up{{job="{JOB}"}}[1h])').values())
        _, page = http_get(f"http://{shard.exporter_address}/metrics")
        served = sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
                     if line.startswith('probe_exporter_probes_total{module="http_2xx"'))
        # Probes counted by the exporter are stored by Prometheus a moment later, and scrapes go on.
        assert scrapes <= served <= scrapes + 4 * TARGETS_PER_SHARD, f"exporter {shard.index}: {served} vs {scrapes}"


def test_losing_one_replica_only_affects_its_shard(shards: tuple[list[str], list[Shard]]) -> None:
    targets, replicas = shards
    _wait_for_shards(targets, replicas)
    killed, survivor = replicas
    stop_process(killed.exporter)

    deadline = time.monotonic() + SCRAPED_WITHIN_SECONDS
    while True:
        killed_up = killed.prometheus.values("up")
        if killed_up and set(killed_up.values()) == {0.0}:
            break
        assert time.monotonic() < deadline, f"killed shard still up: {killed_up}"
        time.sleep(0.5)
    killed_targets = {instance for job, instance in killed_up if job == JOB}
    assert len(killed_targets) == TARGETS_PER_SHARD
    assert (SELF_JOB, killed.exporter_address) in killed_up

    # The surviving shard keeps probing its targets for several scrapes after the loss.
    for _ in range(4):
        up = survivor.prometheus.values("up")
        assert up and set(up.values()) == {1.0}, f"surviving shard: up {up}"
        success = survivor.probed_targets()
        assert len(success) == TARGETS_PER_SHARD and set(success.values()) == {1.0}, success
        assert not killed_targets & set(success)
        time.sleep(1)
    # The lost shard's probe series went stale rather than keeping their last value.
    assert killed.probed_targets() == {}

"""Concurrency limits (global and per module, waiting inside the deadline) and allowed_targets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi.testclient import TestClient

from probe_exporter.config import ConfigError, load_config
from probe_exporter.exporter import Exporter
from probe_exporter.limits import TargetPolicy
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.support.capture_server import CaptureServer

# --- allowed_targets matching --------------------------------------------------------------------------


@pytest.mark.parametrize(("entries", "prober", "target", "allowed"), [
    # host globs, with and without a port
    (["*.example.com"], "http", "https://api.example.com/health", True),
    (["*.example.com"], "http", "api.example.com", True),  # blackbox assumes http://
    (["*.example.com"], "http", "https://example.com.evil.org/", False),
    (["*.example.com"], "http", "https://evil.org/.example.com", False),
    (["*.example.com"], "http", "https://api.example.com@evil.org/", False),
    (["*.example.com"], "tcp", "db.EXAMPLE.com.:5432", True),
    (["db.example.com:5432"], "tcp", "db.example.com:5432", True),
    (["db.example.com:5432"], "tcp", "db.example.com:22", False),
    (["switch-*"], "snmp", "udp://switch-7:161", True),
    (["switch-*"], "snmp", "router-1", False),
    # CIDRs match IP literals only (a name would be resolved again by the prober)
    (["10.0.0.0/8"], "icmp", "10.1.2.3", True),
    (["10.0.0.0/8"], "tcp", "10.1.2.3:22", True),
    (["10.0.0.0/8"], "tcp", "11.1.2.3:22", False),
    (["10.0.0.0/8"], "http", "http://10.9.9.9:8080/x", True),
    (["10.0.0.0/8"], "tcp", "[::ffff:10.0.0.1]:22", True),
    (["2001:db8::/32"], "tcp", "[2001:db8::1]:53", True),
    (["2001:db8::/32"], "dns", "2001:db8::1", True),
    (["10.0.0.0/8"], "tcp", "localhost:22", False),
    (["127.0.0.1"], "sql", "127.0.0.1", True),
    # URL prefixes: scheme, host and port exact, path at a segment boundary
    (["https://api.example.com/v1"], "http", "https://api.example.com/v1/health?x=1", True),
    (["https://api.example.com/v1"], "http", "https://api.example.com:443/v1", True),
    (["https://api.example.com/v1"], "http", "https://api.example.com/v10", False),
    (["https://api.example.com/v1"], "http", "http://api.example.com/v1", False),
    (["https://api.example.com/v1"], "http", "https://api.example.com:8443/v1", False),
    (["https://api.example.com/v1"], "http", "https://user:pw@api.example.com/v1", False),
    (["https://api.example.com"], "http", "https://api.example.com.evil.org/", False),
    # paths (unix sockets, SQLite files), normalised first
    (["/run/app/*.sock"], "unix", "/run/app/api.sock", True),
    (["/run/app/*.sock"], "unix", "/run/app/../../etc/x.sock", False),
    # empty list: everything
    ([], "http", "anything", True),
])
def test_target_policy(entries: list[str], prober: str, target: str, allowed: bool) -> None:
    assert TargetPolicy(entries).allows(target, prober) is allowed


def test_bad_allowed_targets_fail_the_config_load_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "m.yml"
    path.write_text("modules:\n  m:\n    prober: tcp\n    allowed_targets: ['10.0.0.0/33']\n")
    with pytest.raises(ConfigError, match=r"m.yml:4: modules.m.allowed_targets: invalid CIDR '10.0.0.0/33'"):
        load_config([str(path)])


def test_denied_target_is_403_and_never_contacted(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    path = tmp_path / "m.yml"
    path.write_text("modules:\n  guarded:\n    prober: tcp\n    allowed_targets: ['10.0.0.0/8', '*.internal']\n")
    with TestClient(create_app(Exporter(Settings(config_files=[str(path)])))) as client:
        response = client.get("/probe", params={"module": "guarded", "target": f"127.0.0.1:{port}"})
        assert response.status_code == 403
        assert response.text == (f'Target "127.0.0.1:{port}" is not allowed for module "guarded" '
                                 "(not in its allowed_targets)\n")
        assert 'probe_exporter_targets_denied_total{module="guarded"} 1' in client.get("/metrics").text
        form = client.get("/", params={"module": "guarded", "target": f"127.0.0.1:{port}"}).text
        assert "Not run:" in form and "not in its allowed_targets" in form
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing ever connected
    listener.close()


def test_allowed_target_probes_normally(tmp_path: Path, plain_http_target: str) -> None:
    path = tmp_path / "m.yml"
    path.write_text(f"modules:\n  guarded:\n    prober: http\n    allowed_targets: ['{plain_http_target}/']\n")
    with TestClient(create_app(Exporter(Settings(config_files=[str(path)])))) as client:
        response = client.get("/probe", params={"module": "guarded", "target": plain_http_target + "/ok"})
        assert response.status_code == 200 and "probe_success 1" in response.text
        assert "allowed_targets:" in client.get("/config").text


# --- concurrency -----------------------------------------------------------------------------------------


@pytest.fixture()
async def limited_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    path = tmp_path / "m.yml"
    path.write_text("modules:\n"
                    "  one_at_a_time:\n    prober: http\n    timeout: 5s\n    max_concurrency: 1\n"
                    "  other:\n    prober: http\n    timeout: 5s\n")
    app = create_app(Exporter(Settings(config_files=[str(path)], max_concurrent_probes=2)))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://exporter") as client:
            yield client


async def _get(client: httpx.AsyncClient, module: str, target: str, scrape_timeout: str = "") -> httpx.Response:
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": scrape_timeout} if scrape_timeout else {}
    return await client.get("/probe", params={"module": module, "target": target, "debug": "true"}, headers=headers)


async def _probe(client: httpx.AsyncClient, module: str, target: str, scrape_timeout: str = "") -> str:
    response = await _get(client, module, target, scrape_timeout)
    assert response.status_code == 200
    return response.text


async def test_module_limit_queues_within_the_deadline_then_answers_503(limited_client: httpx.AsyncClient,
                                                                        slow_http_target: str) -> None:
    slow = asyncio.create_task(_probe(limited_client, "one_at_a_time", slow_http_target + "/sleep/1.2"))
    await asyncio.sleep(0.2)  # the slow probe holds the module's only slot
    # This one has 0.5s (1s scrape timeout - 0.5s offset): it cannot start in time.
    starved = asyncio.create_task(_get(limited_client, "one_at_a_time", slow_http_target, "1"))
    # This one has 5s: it waits for the slot and then succeeds.
    patient = asyncio.create_task(_probe(limited_client, "one_at_a_time", slow_http_target))
    await asyncio.sleep(0.1)
    metrics = (await limited_client.get("/metrics")).text
    assert 'probe_exporter_probes_queued{module="one_at_a_time"} 2' in metrics
    # Another module is not held up by the full one.
    assert "probe_success 1" in await _probe(limited_client, "other", slow_http_target)
    # The exporter was busy, the target is not down: 503 with one line, never probe_success 0.
    starved_response = await starved
    assert starved_response.status_code == 503
    assert starved_response.text == ("Probe could not start before its deadline (0.5s): module max_concurrency 1 "
                                     "reached, 1 other probes of this module waiting\n")
    assert "probe_success 1" in await slow
    patient_text = await patient
    assert "probe_success 1" in patient_text and "Waited for a concurrency slot" in patient_text
    metrics = (await limited_client.get("/metrics")).text
    assert 'probe_exporter_probes_not_started_total{module="one_at_a_time",reason="module_limit"} 1' in metrics
    assert 'probe_exporter_probes_queued{module="one_at_a_time"} 0' in metrics
    assert 'probe_exporter_probe_queue_wait_seconds_count{module="one_at_a_time"} 2' in metrics
    assert 'probe_exporter_probes_total{module="one_at_a_time",prober="http",result="failure"} 0' in metrics
    assert "probe_exporter_max_concurrent_probes 2" in metrics
    page = (await limited_client.get("/")).text
    assert "could not start before its deadline" in page  # the history shows it too


async def test_a_late_start_reports_its_own_duration(limited_client: httpx.AsyncClient,
                                                     slow_http_target: str) -> None:
    slow = asyncio.create_task(_probe(limited_client, "one_at_a_time", slow_http_target + "/sleep/1"))
    await asyncio.sleep(0.2)
    late = await _probe(limited_client, "one_at_a_time", slow_http_target)  # queued ~0.8s, then fast
    assert "probe_success 1" in await slow
    wait_line = next(line for line in late.splitlines() if "Waited for a concurrency slot" in line)
    waited = float(wait_line.split("wait_seconds=")[1].split()[0])
    duration = float(next(line for line in late.splitlines() if line.startswith("probe_duration_seconds ")).split()[1])
    assert waited > 0.3 and duration < waited  # the wait is not the target's time


async def test_global_limit_applies_across_modules(limited_client: httpx.AsyncClient,
                                                   slow_http_target: str) -> None:
    busy = [asyncio.create_task(_probe(limited_client, "other", slow_http_target + "/sleep/1")) for _ in range(2)]
    await asyncio.sleep(0.2)  # both global slots are taken
    starved = await _get(limited_client, "one_at_a_time", slow_http_target, "1")
    assert starved.status_code == 503 and "global --probes.max-concurrency 2 reached" in starved.text
    for task in busy:
        assert "probe_success 1" in await task
    metrics = (await limited_client.get("/metrics")).text
    assert 'probe_exporter_probes_not_started_total{module="one_at_a_time",reason="global_limit"} 1' in metrics


async def test_a_freed_global_slot_goes_to_the_module_with_fewest_probes_running() -> None:
    from probe_exporter.limits import ProbeLimiter

    limiter = ProbeLimiter(2)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(module: str) -> None:
        async with limiter.slot(module):
            order.append(module)
            await release.wait()

    holders = [asyncio.create_task(hold("slow")) for _ in range(2)]
    await asyncio.sleep(0)
    backlog = [asyncio.create_task(hold("slow")) for _ in range(5)]
    await asyncio.sleep(0)
    fast = asyncio.create_task(hold("fast"))  # arrives behind five queued probes of the slow module
    await asyncio.sleep(0)
    assert order == ["slow", "slow"] and limiter.queue_length() == 6
    holders[0].cancel()  # one slot frees: the fast module, with none running, gets it first
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert order == ["slow", "slow", "fast"]
    release.set()
    await asyncio.gather(*holders[1:], *backlog, fast)
    assert order.count("slow") == 7 and limiter.queue_length() == 0


async def test_limiter_without_limits_never_waits() -> None:
    from probe_exporter.limits import ProbeLimiter

    limiter = ProbeLimiter(0)
    async with limiter.slot("m", 0) as waited, limiter.slot("m", 0) as waited_again:
        assert waited == 0.0 and waited_again == 0.0
    assert limiter.queue_length() == 0


async def test_changed_module_limit_takes_effect_and_cancelled_waits_release_nothing() -> None:
    from probe_exporter.limits import ProbeLimiter

    limiter = ProbeLimiter(0)
    async with limiter.slot("m", 1):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05), limiter.slot("m", 1):
                pass
        assert limiter.queue_length("m") == 0
        # A reload raised the limit to 2: the new semaphore has room although the old slot is held.
        async with asyncio.timeout(1), limiter.slot("m", 2) as waited:
            assert waited < 0.05
    async with asyncio.timeout(1), limiter.slot("m", 1):  # back to 1 after the "reload": a fresh semaphore
        pass


# --- normalised targets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "allowed"), [
    ("/redir", True),
    ("/redir/sub", True),
    ("/redir/./sub", True),
    ("/redir/sub/../other", True),
    ("/redir/../other", False),
    ("/redir/%2e%2e/other2", False),
    ("/redir/%2E%2e/other2", False),
    ("/redir/.%2e/other2", False),
    ("/redir%2f..%2fother", False),
    ("/redir/../../other3", False),
    ("/redir/..", False),
    ("/other/../redir/x", True),
])
def test_url_prefix_is_matched_on_the_normalised_path(path: str, allowed: bool) -> None:
    assert TargetPolicy(["http://127.0.0.1:8080/redir"]).allows("http://127.0.0.1:8080" + path, "http") is allowed


@pytest.mark.parametrize("target", ["http://127.0.0.1:8080/redir\t/../../other3", "http://127.0.0.1:8080/redir\n",
                                    "127.0.0.1\x00:8080", "http://127.0.0.1:8080/redir\x7f"])
def test_target_with_a_control_character_is_never_allowed(target: str) -> None:
    assert not TargetPolicy(["http://127.0.0.1:8080/redir", "127.0.0.0/8"]).allows(target, "http")


def test_prefix_escapes_answer_403_and_control_characters_400(tmp_path: Path) -> None:
    server = CaptureServer()
    prefix = f"http://127.0.0.1:{server.port}/redir"
    path = tmp_path / "m.yml"
    path.write_text("modules:\n"
                    f"  guarded:\n    prober: http\n    allowed_targets: ['{prefix}']\n"
                    "  tcp_open:\n    prober: tcp\n")
    with TestClient(create_app(Exporter(Settings(config_files=[str(path)])))) as client:
        for escape in ("/redir/../other", "/redir/%2e%2e/other2", "/redir/%2E%2E/other2"):
            response = client.get("/probe", params={"module": "guarded", "target": f"http://127.0.0.1:{server.port}"
                                                                                    + escape})
            assert response.status_code == 403, escape
            assert "not in its allowed_targets" in response.text
        for target, char in ((prefix + "\t/../../other3", "0009"), (prefix + "\r\n", "000D"),
                             (f"127.0.0.1\x00:{server.port}", "0000"), (prefix + "\x1b", "001B")):
            module = "tcp_open" if "\x00" in target else "guarded"
            response = client.get("/probe", params={"module": module, "target": target})
            assert response.status_code == 400, repr(target)
            assert response.text == f"Target contains a control character (U+{char})\n"
        assert client.get("/probe", params={"module": "guarded", "target": prefix + "/ok"}).status_code == 200
    server.close()
    assert server.paths == ["/redir/ok"]  # only the allowed probe reached the server

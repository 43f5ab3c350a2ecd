"""SNMPv3 on our own codec against net-snmp's snmpd: every auth x priv pair gives, value for value,
what the pysnmp path gives and what Debian's snmp_exporter gives; reports are handled as RFC 3414
says (resync on notInTimeWindows, rediscovery on unknownEngineID, a clear failure otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from probe_exporter.config import Config, load_config
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.pipeline import run_probe
from probe_exporter.probers.snmp import engine
from tests.probers.snmp import agents
from tests.probers.snmp.conftest import SNMPD_USERS, V3_MATRIX

GO_BINARY = Path("/usr/bin/prometheus-snmp-exporter")
SECRETS = ("authpass123", "privpass123", "not-the-password")


@pytest.fixture(scope="module")
def config(shared_snmp_yml: Path, test_auths_yml: Path) -> Config:
    return load_config([str(shared_snmp_yml), str(test_auths_yml)])


def _system_lines(text: str) -> list[str]:
    """The system module's lines, less sysUpTime (the agent's clock moves between two scrapes)."""
    kept = []
    for line in text.splitlines():
        name = line.split(" ", 3)[2] if line.startswith("# ") else line
        if name.startswith("sys") and not name.startswith("sysUpTime"):
            kept.append(line)
    return kept


async def _probe(config: Config, auth: str, target: str, params: dict[str, str] | None = None,
                 timeout: float = 5.0) -> tuple[bool, str, str]:
    outcome = await run_probe("system", config.modules["system"], target, timeout,
                              {"auth": auth, **(params or {})}, config)
    return outcome.success, render_text(collect_sorted([outcome.metrics])).decode(), outcome.log.text()


@pytest.fixture
def fast_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if anything reaches pysnmp's dispatcher."""
    def refuse(*args: Any) -> None:
        raise AssertionError("the pysnmp path was used")
    monkeypatch.setattr(engine.Session, "_request", refuse)


@pytest.mark.parametrize("auth", [*sorted(V3_MATRIX), "v3noauth"])
async def test_fast_path_equals_pysnmp(config: Config, snmpd_agent: str, auth: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(engine.Session, "_request", lambda *args: (_ for _ in ()).throw(AssertionError("pysnmp")))
        success, fast_text, log = await _probe(config, auth, snmpd_agent)
    assert success, log
    assert 'sysName{sysName="snmpd-under-test"} 1' in fast_text.splitlines()
    monkeypatch.setattr(engine, "FAST_V3_PATH", False)
    success, slow_text, log = await _probe(config, auth, snmpd_agent)
    assert success, log
    assert _system_lines(fast_text) == _system_lines(slow_text)
    assert len(_system_lines(fast_text)) > 20


async def _fails_with(config: Config, auth: str, target: str, reason: str,
                      params: dict[str, str] | None = None, timeout: float = 3.0) -> None:
    success, text, log = await _probe(config, auth, target, params, timeout=timeout)
    assert not success
    assert "probe_success 0" in text
    assert reason in log, log
    for secret in SECRETS:
        assert secret not in log and secret not in text


async def test_wrong_auth_password_is_a_wrong_digest(config: Config, snmpd_agent: str, fast_only: None) -> None:
    await _fails_with(config, "v3_wrong_password", snmpd_agent, "wrong digest")


async def test_unknown_user(config: Config, snmpd_agent: str, fast_only: None) -> None:
    await _fails_with(config, "v3_unknown_user", snmpd_agent, "unknown user name")


async def test_unsupported_security_level(config: Config, snmpd_agent: str, fast_only: None) -> None:
    await _fails_with(config, "v3_unsupported_level", snmpd_agent, "unsupported security level")


async def test_context_name_is_sent(config: Config, snmpd_agent: str, fast_only: None) -> None:
    # snmpd drops a request for a context it does not serve (no report): the name did reach it.
    await _fails_with(config, "v3sha_aes", snmpd_agent, "imeout", {"snmp_context": "no-such-context"},
                      timeout=1.0)


def _known_engine(target: str) -> Any:
    host, port = target.rsplit(":", 1)
    return engine.get_engine().v3_engines[(host, int(port))]


async def test_wrong_engine_time_resyncs_once(config: Config, snmpd_agent: str, fast_only: None) -> None:
    assert (await _probe(config, "v3sha_aes", snmpd_agent))[0]
    state = _known_engine(snmpd_agent)
    real = (state.boots, state.time_at(engine.get_engine().loop.time()))
    state.time += 100_000  # far out of the 150 s window: snmpd answers notInTimeWindows
    success, text, log = await _probe(config, "v3sha_aes", snmpd_agent)
    assert success, log
    assert 'sysName{sysName="snmpd-under-test"} 1' in text.splitlines()
    assert state.boots == real[0] and abs(state.time_at(engine.get_engine().loop.time()) - real[1]) < 10
    state.boots += 3  # a wrong boots counter is out of the window too
    assert (await _probe(config, "v3md5_des", snmpd_agent))[0]
    assert state.boots == real[0]


async def test_unknown_engine_id_rediscovers(config: Config, snmpd_agent: str, fast_only: None) -> None:
    assert (await _probe(config, "v3sha256", snmpd_agent))[0]
    state = _known_engine(snmpd_agent)
    real_id = state.engine_id
    state.engine_id = b"\x80\x00\x00\x00\x01not-this-one"
    success, _, log = await _probe(config, "v3sha256", snmpd_agent)
    assert success, log
    assert _known_engine(snmpd_agent).engine_id == real_id


async def test_context_engine_id_of_the_agent(config: Config, snmpd_agent: str, fast_only: None) -> None:
    assert (await _probe(config, "v3sha_aes", snmpd_agent))[0]
    engine_id = _known_engine(snmpd_agent).engine_id.hex()
    success, text, log = await _probe(config, "v3sha_aes", snmpd_agent, {"snmp_engineid": engine_id})
    assert success, log
    assert 'sysName{sysName="snmpd-under-test"} 1' in text.splitlines()


async def test_agent_that_never_answers_times_out(config: Config, fast_only: None) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        await _fails_with(config, "v3sha_aes", target, "request timeout")


# --- side by side with Debian's snmp_exporter 0.21 --------------------------------------------------

SIDE_BY_SIDE = [*sorted(V3_MATRIX), "v3noauth"]


@pytest.fixture(scope="module")
def go_exporter(shared_snmp_yml: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """0.21 reads the pre-0.23 format: one copy of the system module per user, the auth inside."""
    if not GO_BINARY.exists():
        pytest.skip(f"{GO_BINARY} not installed (apt-get install prometheus-snmp-exporter)")
    system = yaml.load(shared_snmp_yml.read_text(), Loader=yaml.CSafeLoader)["modules"]["system"]
    old = {}
    for user in SIDE_BY_SIDE:
        level, auth, password, priv, priv_password = SNMPD_USERS[user]
        module_auth: dict[str, str] = {"username": user, "security_level": level}
        if auth:
            module_auth.update(auth_protocol=auth, password=password)
        if priv:
            module_auth.update(priv_protocol=priv, priv_password=priv_password)
        old[f"system_{user}"] = {**system, "version": 3, "auth": module_auth}
    path = tmp_path_factory.mktemp("sbs3") / "snmp021.yml"
    path.write_text(yaml.safe_dump(old, sort_keys=False))
    with agents.running_snmp_exporter(GO_BINARY, path) as url:
        yield url


@pytest.mark.reference
@pytest.mark.parametrize("auth", SIDE_BY_SIDE)
async def test_identical_to_snmp_exporter(config: Config, snmpd_agent: str, go_exporter: str, auth: str,
                                          fast_only: None) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{go_exporter}/snmp", params={"target": snmpd_agent, "module": f"system_{auth}"})
    assert response.status_code == 200, response.text[:300]
    success, text, log = await _probe(config, auth, snmpd_agent)
    assert success, log
    assert _system_lines(text) == _system_lines(response.text)

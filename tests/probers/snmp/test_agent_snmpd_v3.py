"""SNMPv3 against net-snmp's snmpd: every security level, several auth/priv protocols, failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from probe_exporter.config import Config, load_config
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.pipeline import run_probe
from tests.probers.snmp.conftest import V3_USERS


@pytest.fixture(scope="module")
def config(shared_snmp_yml: Path, test_auths_yml: Path) -> Config:
    return load_config([str(shared_snmp_yml), str(test_auths_yml)])


async def _probe(config: Config, auth: str, target: str, timeout: float = 5.0,
                 params: dict[str, str] | None = None) -> tuple[bool, str, str]:
    outcome = await run_probe("system", config.modules["system"], target, timeout,
                              {"auth": auth, **(params or {})}, config)
    return outcome.success, render_text(collect_sorted([outcome.metrics])).decode(), outcome.log.text()


@pytest.mark.parametrize("auth", sorted(V3_USERS))
async def test_v3_user(config: Config, snmpd_agent: str, auth: str) -> None:
    success, text, log = await _probe(config, auth, snmpd_agent)
    assert success, log
    assert 'sysName{sysName="snmpd-under-test"} 1' in text.splitlines()
    assert 'sysLocation{sysLocation="test-lab"} 1' in text.splitlines()


async def test_v2c_against_snmpd(config: Config, snmpd_agent: str) -> None:
    success, text, log = await _probe(config, "snmpd_public", snmpd_agent)
    assert success, log
    assert 'sysName{sysName="snmpd-under-test"} 1' in text.splitlines()


async def test_v3_wrong_password_fails_fast_with_reason_and_no_secret(config: Config, snmpd_agent: str) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    success, text, log = await _probe(config, "v3_wrong_password", snmpd_agent, timeout=3.0)
    assert not success
    assert loop.time() - start < 3.2
    assert "probe_success 0" in text
    assert "Error scraping target" in log
    for secret in ("not-the-password", "privpass123", "authpass123"):
        assert secret not in log and secret not in text


async def test_v3_wrong_password_does_not_spoil_the_right_one(config: Config, snmpd_agent: str) -> None:
    await _probe(config, "v3_wrong_password", snmpd_agent, timeout=1.0)
    success, _, log = await _probe(config, "v3sha_aes", snmpd_agent)
    assert success, log


async def test_v3_unknown_context_engine_id_is_rejected_before_traffic(config: Config, snmpd_agent: str) -> None:
    from probe_exporter.probers.base import BadRequest

    with pytest.raises(BadRequest, match="snmp_engineid"):
        await _probe(config, "v3sha_aes", snmpd_agent, params={"snmp_engineid": "zz"})

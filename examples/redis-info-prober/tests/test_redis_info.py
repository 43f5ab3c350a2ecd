"""The plugin against a real redis-server started here, through probe_exporter's test kit."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from probe_exporter import testkit
from probe_exporter.config import ConfigError
from probe_exporter.probers.base import BadRequest

PASSWORD = "s3cret-redis-pass"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_target() -> Iterator[str]:
    server = shutil.which("redis-server")
    assert server, "redis-server is needed (Debian package redis-server)"
    port = _free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--requirepass", PASSWORD],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


async def test_info_fields_become_gauges(redis_target: str) -> None:
    module = testkit.module("redis_info", {"password": PASSWORD, "expect_role": "master"})
    result = await testkit.probe(module, redis_target)
    assert result.success, result.log.text()
    assert result.value("probe_redis_connected_clients") == 1  # this probe's own connection
    assert result.value("probe_redis_uptime_in_seconds") is not None
    assert result.value("probe_redis_role", role="master") == 1
    assert PASSWORD not in result.text() + result.log.text()


async def test_wrong_password_fails_without_showing_it(redis_target: str) -> None:
    result = await testkit.probe(testkit.module("redis_info", {"password": "not-the-password"}), redis_target)
    assert not result.success
    assert "WRONGPASS" in result.log.text() and "not-the-password" not in result.log.text()


async def test_role_mismatch_and_missing_auth_fail(redis_target: str) -> None:
    result = await testkit.probe(testkit.module("redis_info", {"password": PASSWORD, "expect_role": "slave"}),
                                 redis_target)
    assert not result.success and result.value("probe_redis_role", role="master") == 1
    unauthenticated = await testkit.probe(testkit.module("redis_info"), redis_target)
    assert not unauthenticated.success and "NOAUTH" in unauthenticated.log.text()


async def test_a_closed_port_fails_and_a_bad_target_is_a_bad_request() -> None:
    result = await testkit.probe(testkit.module("redis_info"), f"127.0.0.1:{_free_port()}")
    assert not result.success and "Error dialing Redis" in result.log.text()
    with pytest.raises(BadRequest):
        await testkit.probe(testkit.module("redis_info"), "127.0.0.1:notaport")


def test_unknown_keys_are_refused_with_their_name() -> None:
    with pytest.raises(ConfigError, match=r"modules\.test\.redis_info\.pasword"):
        testkit.module("redis_info", {"pasword": "x"})

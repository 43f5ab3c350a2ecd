"""The example plugin (examples/redis-info-prober), installed the way a user installs it (a built,
non-editable package, seen only through its entry point), listed, configured and probed by the real
exporter against a real redis-server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.ports import free_port

PLUGIN = REPO / "examples" / "redis-info-prober"
REDIS_PASSWORD = "plugin-test-pass"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a Python that has the plugin installed (in a directory of its own)."""
    site = tmp_path_factory.mktemp("plugin-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(PLUGIN)],
                   check=True, timeout=300, capture_output=True)
    return {**os.environ, "PYTHONPATH": str(site)}


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    server = shutil.which("redis-server")
    assert server, "redis-server is needed (.ci/run installs it)"
    port = free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--requirepass", REDIS_PASSWORD],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _connects(port))
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def _wait_for(ready: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, "not ready in time"
        time.sleep(0.05)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_the_plugin_passes_its_own_tests_as_installed(plugin_env: dict[str, str], tmp_path: Path) -> None:
    where = subprocess.run([sys.executable, "-c", "import probe_exporter_redis_info as p; print(p.__file__)"],
                           env=plugin_env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(plugin_env["PYTHONPATH"])  # the installed copy, not the source tree
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                          str(PLUGIN / "pyproject.toml"), "--rootdir", str(PLUGIN), str(PLUGIN / "tests")],
                         env=plugin_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 passed" in run.stdout


def test_the_exporter_lists_shows_and_probes_the_plugin(plugin_env: dict[str, str], redis_port: int,
                                                        tmp_path: Path) -> None:
    listed = subprocess.run([sys.executable, "-m", "probe_exporter", "--help"], env=plugin_env,
                            capture_output=True, text=True, check=True).stdout
    assert "plugins: redis_info (probe-exporter-redis-info 0.1.0)" in listed
    config = tmp_path / "redis.yml"
    config.write_text(f"modules:\n  redis:\n    prober: redis_info\n    timeout: 5s\n    redis_info:\n"
                      f"      password: {REDIS_PASSWORD}\n      expect_role: master\n")
    port = free_port()
    exporter = subprocess.Popen([sys.executable, "-m", "probe_exporter", "--config.file", str(config),
                                 "--web.listen-address", f"127.0.0.1:{port}"], env=plugin_env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: _connects(port))
        shown = _get(f"http://127.0.0.1:{port}/config")
        assert "prober: redis_info" in shown and "expect_role: master" in shown
        assert REDIS_PASSWORD not in shown and "<secret>" in shown
        page = _get(f"http://127.0.0.1:{port}/probe?module=redis&target=127.0.0.1:{redis_port}")
        assert "probe_success 1" in page and 'probe_redis_role{role="master"} 1' in page
        refused = _get(f"http://127.0.0.1:{port}/probe?module=redis&target=127.0.0.1:{free_port()}")
        assert "probe_success 0" in refused
    finally:
        exporter.terminate()
        exporter.wait(10)


def test_without_the_plugin_its_prober_name_is_refused_at_load(tmp_path: Path) -> None:
    config = tmp_path / "redis.yml"
    config.write_text("modules:\n  redis:\n    prober: redis_info\n")
    run = subprocess.run([sys.executable, "-m", "probe_exporter", "--config.file", str(config), "--config.check"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1
    assert f"{config}:3: modules.redis.prober: prober 'redis_info' is not valid" in run.stderr

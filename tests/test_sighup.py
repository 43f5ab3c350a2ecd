"""SIGHUP reloads the config atomically in a real exporter process: a bad file keeps the old config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.paths import REPO
from tests.support.ports import free_port


@pytest.fixture()
def exporter(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    config = tmp_path / "modules.yml"
    config.write_text("modules:\n  first:\n    prober: http\n")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "probe_exporter", "--config.file", str(config),
                                "--web.listen-address", f"127.0.0.1:{port}"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(base + "/-/healthy", timeout=1).status_code == 200)
        yield process, base, config
    finally:
        process.terminate()
        process.wait(10)


def _wait(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_sighup_reloads_and_a_bad_file_keeps_the_old_config(
        exporter: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    process, base, config = exporter
    config.write_text("modules:\n  second:\n    prober: http\n")
    os.kill(process.pid, signal.SIGHUP)
    _wait(lambda: "second:" in httpx.get(base + "/config", timeout=2).text)

    config.write_text("modules:\n  broken:\n    prober: nosuch\n")
    os.kill(process.pid, signal.SIGHUP)
    _wait(lambda: "probe_exporter_config_last_reload_successful 0"
          in httpx.get(base + "/metrics", timeout=2).text)
    page = httpx.get(base + "/config", timeout=2).text
    assert "second:" in page and "broken" not in page
    assert process.poll() is None  # still serving

"""--config.enable-auto-reload and --config.auto-reload-interval (blackbox_exporter 0.28): a changed
file is reloaded, a bad one keeps the old config, an unchanged one is not even parsed."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from probe_exporter import autoreload
from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings, auto_reload_interval
from probe_exporter.web.app import create_app
from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.test_sighup import _wait


class CountingExporter(Exporter):
    """The real exporter, counting how often a reload (a parse of the files) happens."""

    reloads = 0

    async def reload(self) -> None:
        self.reloads += 1
        await super().reload()


async def _until(condition: object, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_changed_file_is_reloaded_and_unchanged_one_is_not(tmp_path: Path) -> None:
    config = tmp_path / "modules.yml"
    config.write_text("modules:\n  first:\n    prober: http\n")
    exporter = CountingExporter(Settings(config_files=[str(config)]))
    app = create_app(exporter)
    autoreload.install(app, exporter, 0.05)
    async with LifespanManager(app):
        await asyncio.sleep(0.3)  # several intervals over an unchanged file
        assert exporter.reloads == 0
        config.write_text("modules:\n  second:\n    prober: tcp\n")
        await _until(lambda: "second" in exporter.config.modules)
        assert exporter.reloads == 1
        config.write_text("modules:\n  broken:\n    prober: nosuch\n")
        await _until(lambda: exporter.metrics.reload_success.collect()[0].samples[0].value == 0)
        assert set(exporter.config.modules) == {"second"}  # the old config keeps serving
    reloads = exporter.reloads
    await asyncio.sleep(0.2)
    assert exporter.reloads == reloads  # the watcher stopped with the app


def test_interval_takes_seconds_like_blackbox_and_go_durations() -> None:
    assert auto_reload_interval("30") == 30.0
    assert auto_reload_interval("2s") == 2.0
    assert auto_reload_interval("1m") == 60.0
    with pytest.raises(argparse.ArgumentTypeError):
        auto_reload_interval("soon")


def test_flags_reload_a_running_exporter(tmp_path: Path) -> None:
    config = tmp_path / "modules.yml"
    config.write_text("modules:\n  first:\n    prober: http\n")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "probe_exporter", "--config.file", str(config),
                                "--web.listen-address", f"127.0.0.1:{port}", "--config.enable-auto-reload",
                                "--config.auto-reload-interval", "1"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(base + "/-/healthy", timeout=1).status_code == 200)
        config.write_text("modules:\n  second:\n    prober: tcp\n")
        _wait(lambda: "second:" in httpx.get(base + "/config", timeout=2).text)
        assert "first:" not in httpx.get(base + "/config", timeout=2).text
    finally:
        process.terminate()
        process.wait(10)


def test_bad_interval_is_refused(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "probe_exporter", "--config.file", str(REPO / "modules/*.yml"),
                             "--config.auto-reload-interval", "soon", "--config.check"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2  # argparse's usage error
    assert "--config.auto-reload-interval" in result.stderr

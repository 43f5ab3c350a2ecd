"""--log.prober (blackbox_exporter 0.28): probe log lines at that level or above go to stderr at their
own level, independently of --log.level; without the flag they only show with --log.level=debug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.ports import free_port


def run_probe_command(tmp_path: Path, *flags: str) -> str:
    config = tmp_path / "modules.yml"
    config.write_text("modules:\n  port:\n    prober: tcp\n    tcp:\n      preferred_ip_protocol: ip4\n")
    result = subprocess.run([sys.executable, "-m", "probe_exporter", "probe", "--config.file", str(config),
                             "--module", "port", "--target", f"127.0.0.1:{free_port()}", *flags],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1  # nothing listens there: the probe fails
    assert "probe_success 0" in result.stdout
    return result.stderr


@pytest.mark.parametrize(("flags", "shown", "hidden"), [
    (("--log.prober", "debug"), ["level=debug msg=\"Dialing TCP without TLS\"", "level=info msg=\"Resolving target",
                                 "level=error msg=\"Error dialing TCP\""], []),
    (("--log.prober", "error"), ["level=error msg=\"Error dialing TCP\""], ["Resolving target", "Dialing TCP"]),
    (("--log.prober", "error", "--log.level", "debug"), ["level=error msg=\"Error dialing TCP\""],
     ["Resolving target", "Dialing TCP"]),
    ((), [], ["Resolving target", "Dialing TCP", 'msg="Error dialing TCP"']),
    (("--log.level", "debug"), ["msg=\"Dialing TCP without TLS\"", "msg=\"Error dialing TCP\""], []),
])
def test_prober_log_level(tmp_path: Path, flags: tuple[str, ...], shown: list[str], hidden: list[str]) -> None:
    stderr = run_probe_command(tmp_path, *flags)
    for text in shown:
        assert text in stderr, stderr
    for text in hidden:
        assert text not in stderr, stderr


def test_json_format_applies_to_prober_lines(tmp_path: Path) -> None:
    stderr = run_probe_command(tmp_path, "--log.prober", "error", "--log.format", "json")
    line = next(line for line in stderr.splitlines() if "Error dialing TCP" in line)
    assert line.startswith("{") and '"level": "error"' in line.replace('":"', '": "')


def test_flag_is_in_help() -> None:
    result = subprocess.run([sys.executable, "-m", "probe_exporter", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    for flag in ("--log.prober", "--config.enable-auto-reload", "--config.auto-reload-interval"):
        assert flag in result.stdout

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from probe_exporter import __version__
from probe_exporter.cli import bind_listener, build_parser, main
from tests.support.paths import REPO


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "probe_exporter", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_config_check_ok_and_bad(tmp_path: Path) -> None:
    assert main(["--config.check"]) == 0  # the shipped modules
    bad = tmp_path / "bad.yml"
    bad.write_text("modules:\n  m:\n    prober: http\n    http:\n      nope: 1\n")
    result = run("--config.check", "--config.file", str(bad))
    assert result.returncode == 1
    assert f"{bad}:5: modules.m.http.nope: field nope not found" in result.stderr


def test_probe_command_exit_codes(plain_http_target: str) -> None:
    ok = run("probe", "--module", "http_2xx", "--target", plain_http_target)
    assert ok.returncode == 0 and "probe_success 1" in ok.stdout
    failed = run("probe", "--module", "http_2xx", "--target", plain_http_target + "/status/404")
    assert failed.returncode == 1 and "probe_success 0" in failed.stdout
    unknown = run("probe", "--module", "nosuch", "--target", "x")
    assert unknown.returncode == 2 and 'Unknown module "nosuch"' in unknown.stderr
    debug = run("probe", "--module", "http_2xx", "--target", plain_http_target, "--debug")
    assert debug.stdout.startswith("Logs for the probe:")


def test_probe_command_goes_through_the_same_pipeline(tmp_path: Path, plain_http_target: str) -> None:
    """The module's allowed_targets and timeout apply on the command line as on /probe."""
    config = tmp_path / "m.yml"
    config.write_text("modules:\n  guarded:\n    prober: http\n    timeout: 3s\n"
                      "    allowed_targets: ['10.0.0.0/8']\n  open:\n    prober: http\n    timeout: 3s\n")
    refused = run("probe", "--config.file", str(config), "--module", "guarded", "--target", plain_http_target)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().endswith('is not allowed for module "guarded" (not in its allowed_targets)')
    allowed = run("probe", "--config.file", str(config), "--module", "open", "--target", plain_http_target)
    assert allowed.returncode == 0 and "probe_timeout_seconds 3" in allowed.stdout.splitlines()


async def test_listener_connections_get_tcp_nodelay() -> None:
    """Keep-alive scrapes stall ~40 ms per response (Nagle + delayed ACK) unless accepted sockets have
    TCP_NODELAY, which asyncio sets only when the listener was created with IPPROTO_TCP."""
    listener = bind_listener("127.0.0.1:0")
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=listener)
    async with server:
        _, writer = await asyncio.open_connection(*listener.getsockname())
        assert await asyncio.wait_for(accepted, 5) != 0
        writer.close()


def test_snmp_flags_become_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from probe_exporter.exporter import load_settings_config
    from probe_exporter.settings import from_args

    monkeypatch.setenv("PROBE_TEST_V3_PASSWORD", "from-the-environment")
    config_file = tmp_path / "snmp.yml"
    config_file.write_text("auths:\n  v3:\n    version: 3\n    username: probe\n    security_level: authNoPriv\n"
                           "    auth_protocol: SHA\n    password: ${PROBE_TEST_V3_PASSWORD}\n"
                           "modules:\n  sys:\n    walk: [1.3.6.1.2.1.1.5]\n")
    flags = ["--config.check", "--config.file", str(config_file), "--no-snmp.wrap-large-counters",
             "--config.expand-environment-variables"]
    assert main(flags) == 0
    settings = from_args(build_parser().parse_args(flags))
    assert settings.snmp_wrap_large_counters is False and settings.expand_environment_variables is True
    assert load_settings_config(settings).snmp_auths["v3"].password.reveal() == "from-the-environment"
    assert from_args(build_parser().parse_args([])).snmp_wrap_large_counters is True  # upstream's default

"""deploy/systemd/probe-exporter.service: the hardening the unit promises, `systemd-analyze verify`
clean, a low exposure score, and an ExecStart command line the exporter accepts."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.deploy_tools import DEPLOY, REPO, require_binary, run_checked

UNIT = DEPLOY / "systemd" / "probe-exporter.service"
INSTALLED_BINARY = "/opt/probe-exporter/bin/probe-exporter"


def _directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) in file order; repeated keys are kept, as systemd accumulates them."""
    section = ""
    result = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {line!r}"
        result.append((section, key.strip(), value.strip()))
    return result


def _service() -> dict[str, list[str]]:
    service: dict[str, list[str]] = {}
    for section, key, value in _directives(UNIT.read_text()):
        if section == "Service":
            service.setdefault(key, []).append(value)
    return service


def test_unit_sections() -> None:
    sections = {section for section, _, _ in _directives(UNIT.read_text())}
    assert sections == {"Unit", "Service", "Install"}


@pytest.mark.parametrize(("key", "value"), [
    ("DynamicUser", "yes"), ("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"),
    ("ProtectHome", "yes"), ("CapabilityBoundingSet", "CAP_NET_RAW"), ("SystemCallFilter", "@system-service"),
    ("ExecReload", "/bin/kill -HUP $MAINPID"),
])
def test_hardening_directive(key: str, value: str) -> None:
    assert value in _service().get(key, []), f"{key}={value} missing"


def test_address_families_allow_what_probes_use_and_nothing_else() -> None:
    (families,) = _service()["RestrictAddressFamilies"]
    assert set(families.split()) == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}


def test_no_ambient_capability_by_default() -> None:
    """Raw ICMP sockets are opt-in: the line exists, commented out."""
    assert "AmbientCapabilities" not in _service()
    assert re.search(r"^#AmbientCapabilities=CAP_NET_RAW$", UNIT.read_text(), re.M)


def _unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout (verify insists the binary exists)."""
    text = UNIT.read_text()
    assert INSTALLED_BINARY in text
    path = tmp_path / UNIT.name
    path.write_text(text.replace(INSTALLED_BINARY, f"{sys.executable} -m probe_exporter"))
    return path


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    output = run_checked([analyze, "verify", str(_unit_for_this_machine(tmp_path))])
    assert output.strip() == "", output


def test_verify_reports_a_misspelled_directive(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    path = _unit_for_this_machine(tmp_path)
    path.write_text(path.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=30)
    assert "ProtectSytem" in result.stdout + result.stderr


def test_exposure_score_is_low(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    output = run_checked([analyze, "security", "--offline=true", str(_unit_for_this_machine(tmp_path))])
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert match, output[-500:]
    assert float(match.group(1)) <= 2.0, output[-2000:]


def test_execstart_arguments_are_accepted_by_the_exporter() -> None:
    """The unit's flags, with the shipped modules standing in for /etc/probe_exporter, pass --config.check."""
    (exec_start,) = _service()["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == INSTALLED_BINARY
    args = [arg.replace("/etc/probe_exporter/", f"{REPO}/modules/") for arg in argv[1:]]
    assert any(arg.startswith("--config.file=") and arg.endswith("/*.yml") for arg in args)
    result = subprocess.run([sys.executable, "-m", "probe_exporter", *args, "--config.check"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout

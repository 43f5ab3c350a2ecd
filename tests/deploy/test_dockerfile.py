"""Dockerfile and .dockerignore (no Docker engine here): parsed with dockerfile-parse and checked for
the properties the image must have; the HEALTHCHECK command is run against a real exporter, with TLS
and basic auth enabled."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import trustme
from dockerfile_parse import DockerfileParser

from tests.support.deploy_tools import REPO
from tests.support.exporter_process import ExporterProcess
from tests.support.ports import free_port

DOCKERFILE = REPO / "Dockerfile"


@pytest.fixture(scope="module")
def stages() -> list[list[dict[str, Any]]]:
    """Instructions per build stage (comments dropped)."""
    result: list[list[dict[str, Any]]] = []
    for instruction in DockerfileParser(path=str(DOCKERFILE)).structure:
        if instruction["instruction"] == "FROM":
            result.append([])
        if instruction["instruction"] != "COMMENT":
            result[-1].append(instruction)
    return result


def _values(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [instruction["value"] for instruction in stage if instruction["instruction"] == name]


def test_two_stages_on_python_slim(stages: list[list[dict[str, Any]]]) -> None:
    assert DockerfileParser(path=str(DOCKERFILE)).parent_images == ["python:3.11-slim", "python:3.11-slim"]
    assert _values(stages[0], "FROM") == ["python:3.11-slim AS build"]
    assert any("pip wheel" in run and "/wheels" in run and "'.[all]'" in run for run in _values(stages[0], "RUN"))


def test_runtime_stage_installs_only_the_wheels(stages: list[list[dict[str, Any]]]) -> None:
    runtime = stages[-1]
    installs = [run for run in _values(runtime, "RUN") if "pip install" in run]
    assert len(installs) == 1
    assert "--no-index" in installs[0] and "--find-links=/wheels" in installs[0]
    # Every prober's extra, and nothing else (no test dependencies in the image).
    assert installs[0].split("pip install", 1)[1].split()[-1] == "'probe-exporter[all]'"
    # Nothing of the build context but the modules reaches the runtime image.
    assert _values(runtime, "COPY") == ["modules/ /etc/probe_exporter/"]
    assert not _values(runtime, "ADD")


def test_runs_as_a_non_root_user(stages: list[list[dict[str, Any]]]) -> None:
    runtime = stages[-1]
    users = _values(runtime, "USER")
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric, so Kubernetes can check runAsNonRoot"
    assert not gid or int(gid) != 0
    # The user exists in the image and nothing runs as root after the switch.
    assert any(f"--uid {uid}" in run for run in _values(runtime, "RUN"))
    names = [instruction["instruction"] for instruction in runtime]
    assert "RUN" not in names[names.index("USER"):]


def test_port_entrypoint_and_modules(stages: list[list[dict[str, Any]]]) -> None:
    runtime = stages[-1]
    assert _values(runtime, "EXPOSE") == ["10115"]
    assert json.loads(_values(runtime, "ENTRYPOINT")[0]) == ["probe-exporter"]
    assert json.loads(_values(runtime, "CMD")[0]) == ["--config.file=/etc/probe_exporter/*.yml"]
    # The baked-in modules are validated at build time.
    assert any("--config.check" in run and "/etc/probe_exporter/*.yml" in run for run in _values(runtime, "RUN"))


def _healthcheck_argv(stages: list[list[dict[str, Any]]]) -> list[str]:
    (value,) = _values(stages[-1], "HEALTHCHECK")
    options, _, command = value.partition("CMD")
    assert "--interval=" in options and "--timeout=" in options
    argv: list[str] = json.loads(command.strip())
    return argv


def test_healthcheck_is_the_exporters_own_subcommand(stages: list[list[dict[str, Any]]]) -> None:
    # No curl in the slim image, and no hard-wired address or credentials: the subcommand reads PID 1's flags.
    assert _healthcheck_argv(stages) == ["probe-exporter", "healthcheck"]


PASSWORD = "healthcheck-password"
WEB_CONFIG = """\
tls_server_config:
  cert_file: server.pem
  key_file: server.key
basic_auth_users:
  prometheus: {hash}
"""


@pytest.fixture()
def secured_exporter(tmp_path: Path) -> Iterator[ExporterProcess]:
    """The exporter as the image starts it (same modules), with TLS and basic auth from --web.config.file
    (a relative path, as a container's working directory would resolve it), on a free port."""
    ca = trustme.CA()
    leaf = ca.issue_cert("probe-exporter.example")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    (tmp_path / "web.yml").write_text(WEB_CONFIG.format(hash=hashed))
    (tmp_path / "password").write_text(PASSWORD + "\n")
    (tmp_path / "wrong").write_text("not-the-password\n")
    command = [sys.executable, "-m", "probe_exporter", f"--config.file={REPO}/modules/*.yml",
               "--web.config.file=web.yml"]
    with ExporterProcess(command, cwd=tmp_path, scheme="https", listen=f"127.0.0.1:{free_port()}") as process:
        process.wait_listening()
        yield process


def _healthcheck(stages: list[list[dict[str, Any]]], cwd: Path, *extra: str, **env: str) -> int:
    """The image's HEALTHCHECK command, as Docker runs it inside the container (same environment)."""
    argv = _healthcheck_argv(stages)
    executable = Path(sys.executable).parent / argv[0]
    result = subprocess.run([str(executable), *argv[1:], *extra], cwd=cwd, capture_output=True, text=True,
                            timeout=20, env={**os.environ, **env})
    return result.returncode


def test_healthcheck_passes_with_tls_and_basic_auth(stages: list[list[dict[str, Any]]], tmp_path: Path,
                                                    secured_exporter: ExporterProcess) -> None:
    pid = f"--pid={secured_exporter.process.pid}"  # PID 1 in the container
    credentials = {"PROBE_EXPORTER_HEALTHCHECK_USERNAME": "prometheus",
                   "PROBE_EXPORTER_HEALTHCHECK_PASSWORD_FILE": str(tmp_path / "password")}
    assert _healthcheck(stages, Path("/"), pid, **credentials) == 0
    # The server's flags given directly work the same.
    assert _healthcheck(stages, tmp_path, f"--web.listen-address={secured_exporter.address}",
                        "--web.config.file=web.yml", **credentials) == 0
    # Wrong credentials are a failure, not a pass.
    assert _healthcheck(stages, Path("/"), pid, **{**credentials,
                        "PROBE_EXPORTER_HEALTHCHECK_PASSWORD_FILE": str(tmp_path / "wrong")}) == 1
    # Without credentials, the exporter's own 401 still shows it alive.
    assert _healthcheck(stages, Path("/"), pid) == 0
    secured_exporter.stop()
    assert _healthcheck(stages, tmp_path, f"--web.listen-address={secured_exporter.address}",
                        "--web.config.file=web.yml", **credentials) == 1, "healthy with no exporter"


def test_healthcheck_follows_the_listen_address_and_route_prefix(stages: list[list[dict[str, Any]]],
                                                                 tmp_path: Path) -> None:
    command = [sys.executable, "-m", "probe_exporter", f"--config.file={REPO}/modules/http.yml",
               "--web.route-prefix=/probe-exporter"]
    with ExporterProcess(command, cwd=tmp_path, listen=f"127.0.0.1:{free_port()}") as process:
        process.wait_listening()
        assert _healthcheck(stages, Path("/"), f"--pid={process.process.pid}") == 0
        assert _healthcheck(stages, Path("/"), f"--web.listen-address=127.0.0.1:{free_port()}") == 1


# --- .dockerignore -------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's ignore-pattern syntax (Go filepath.Match plus `**`) as a regex on slash paths."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def _in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether `path` is sent to the daemon: the last rule matching it or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    included = True
    for negated, regex in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            included = negated
    return included


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _pattern_regex(line.lstrip("!").strip("/"))))
    return rules


def test_dockerignore_sends_only_what_the_build_copies(stages: list[list[dict[str, Any]]]) -> None:
    rules = _dockerignore_rules()
    copied = [source for stage in stages for value in _values(stage, "COPY")
              for source in shlex.split(value)[:-1] if not source.startswith("--")]
    assert copied
    for source in copied:
        path = REPO / source
        assert path.exists(), source
        # Build artifacts of a local install (bytecode, an in-place C extension) stay out on purpose.
        files = [path] if path.is_file() else [file for file in path.rglob("*") if file.is_file()
                                                 and "__pycache__" not in file.parts and file.suffix != ".so"]
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            assert _in_context(relative, rules), f"{relative} is copied but excluded by .dockerignore"
    for excluded in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "bench/results/x.txt",
                     "probe_exporter/__pycache__/cli.cpython-311.pyc", "build/lib/x.py", ".env",
                     "probe_exporter/probers/snmp/_berfast.cpython-311-x86_64-linux-gnu.so",
                     "probe_exporter/probers/snmp/_renderfast.cpython-311-x86_64-linux-gnu.so"):
        assert not _in_context(excluded, rules), excluded


def test_dockerignore_matcher() -> None:
    rules = [(False, _pattern_regex("*")), (True, _pattern_regex("src")), (False, _pattern_regex("**/*.pyc"))]
    assert _in_context("src/a.py", rules)
    assert not _in_context("src/deep/a.pyc", rules)
    assert not _in_context("other/a.py", rules)

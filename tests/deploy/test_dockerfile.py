"""Dockerfile and .dockerignore (no Docker engine here): parsed with dockerfile-parse and checked for
the properties the image must have; the HEALTHCHECK command is run against a real exporter."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from tests.conftest import free_port
from tests.deploy._tools import REPO

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


def test_healthcheck_needs_no_curl(stages: list[list[dict[str, Any]]]) -> None:
    argv = _healthcheck_argv(stages)
    assert argv[0] == "python"
    assert "http://127.0.0.1:10115/-/healthy" in argv[-1]
    assert not any(tool in " ".join(argv) for tool in ("curl", "wget"))


@pytest.fixture()
def exporter_on_free_port() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The exporter as the image starts it (same modules), on a free port instead of 10115."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "probe_exporter", f"--config.file={REPO}/modules/*.yml",
         f"--web.listen-address=127.0.0.1:{port}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield port, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def test_healthcheck_command_reports_health(stages: list[list[dict[str, Any]]],
                                            exporter_on_free_port: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, process = exporter_on_free_port
    argv = [sys.executable if arg == "python" else arg.replace(":10115/", f":{port}/")
            for arg in _healthcheck_argv(stages)]
    deadline = time.monotonic() + 15
    result = subprocess.run(argv, capture_output=True, timeout=10)
    while result.returncode != 0 and time.monotonic() < deadline:
        assert process.poll() is None, f"exporter exited: {process.stderr.read() if process.stderr else ''!r}"
        time.sleep(0.2)
        result = subprocess.run(argv, capture_output=True, timeout=10)
    assert result.returncode == 0, result.stderr
    process.terminate()
    process.wait(timeout=10)
    assert subprocess.run(argv, capture_output=True, timeout=10).returncode != 0, "healthy with no exporter"


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
        files = [path] if path.is_file() else [file for file in path.rglob("*") if file.is_file()
                                                 and "__pycache__" not in file.parts]
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            assert _in_context(relative, rules), f"{relative} is copied but excluded by .dockerignore"
    for excluded in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "bench/results/x.txt",
                     "probe_exporter/__pycache__/cli.cpython-311.pyc", "build/lib/x.py", ".env"):
        assert not _in_context(excluded, rules), excluded


def test_dockerignore_matcher() -> None:
    rules = [(False, _pattern_regex("*")), (True, _pattern_regex("src")), (False, _pattern_regex("**/*.pyc"))]
    assert _in_context("src/a.py", rules)
    assert not _in_context("src/deep/a.pyc", rules)
    assert not _in_context("other/a.py", rules)

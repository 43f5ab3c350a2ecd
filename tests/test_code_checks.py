"""The checks the project holds its code to, run as tests so CI enforces them: ruff's lint rules over
the tree, and `mypy --strict` (configured in pyproject.toml) over the package."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import REPO


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "--quiet", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing_in_the_package() -> None:
    result = _run("mypy", "probe_exporter")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout

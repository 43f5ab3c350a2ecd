"""Helpers for the deployment tests: paths of the shipped artifacts and external checkers."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO

DEPLOY = REPO / "deploy"


def require_binary(name: str, debian_package: str = "prometheus") -> str:
    """Path of an external checker: skip on a laptop without it, fail in CI (where .ci/run installs it)."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} missing: .ci/run should install the Debian package {debian_package}")
        pytest.skip(f"{name} not installed (apt-get install {debian_package})")
    return path


def run_checked(argv: list[str], cwd: Path | None = None, timeout: float = 30) -> str:
    """Run a checker; fail the test with its output unless it exits 0."""
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {result.returncode}:\n{output}")
    return output

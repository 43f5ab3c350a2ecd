"""`promtool check metrics` as a test oracle for every page we emit."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

# Lint findings that are inherent to drop-in compatibility: Go exporters emit these names too
# (snmp_exporter's camelCase counters without _total, sql_exporter's configured names).
NAMING_LINT = ('should have "_total" suffix', "should be written in 'snake_case'", "should not have \"_total\"")


def promtool_problems(page: str | bytes, *, allow_naming_lint: bool = False) -> list[str]:
    """Problems promtool reports for a text-format page; fails the test on a parse error."""
    binary = shutil.which("promtool")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing: .ci/run installs the Debian package prometheus")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    data = page.encode() if isinstance(page, str) else page
    result = subprocess.run([binary, "check", "metrics"], input=data, capture_output=True, timeout=30)
    output = (result.stdout + result.stderr).decode()
    if result.returncode not in (0, 3):
        pytest.fail(f"promtool could not parse the page (exit {result.returncode}): {output}")
    problems = [line for line in output.splitlines() if line.strip()]
    if allow_naming_lint:
        problems = [line for line in problems if not any(lint in line for lint in NAMING_LINT)]
    return problems

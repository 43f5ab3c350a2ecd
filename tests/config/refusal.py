"""Asserting that a config file is refused with a reason that names its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe_exporter.config import ConfigError, load_config


def assert_refused(path: Path, line: int, reason: str) -> str:
    """load_config refuses `path` with `reason`, on one line that starts with upstream's prefix and
    names the file and `line`; returns the error text."""
    with pytest.raises(ConfigError) as caught:
        load_config([str(path)])
    error = str(caught.value)
    assert error.startswith(f"error parsing config file: {path}:{line}: "), error
    assert reason in error, error
    assert "\n" not in error
    return error


def assert_text_refused(directory: Path, text: str, line: int, reason: str) -> str:
    """assert_refused for a config file holding `text`, written into `directory`."""
    path = directory / "c.yml"
    path.write_text(text)
    return assert_refused(path, line, reason)

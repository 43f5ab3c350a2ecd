"""Where things are: the repository, the shared reference material, files Debian packages install."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
DEBIAN_BLACKBOX_EXAMPLES = Path("/usr/share/doc/prometheus-blackbox-exporter/examples")


def require_file(path: Path) -> Path:
    """Tests that read files installed by Debian packages: skip on a laptop, fail in CI."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: .ci/run should have installed it")
        pytest.skip(f"{path} not installed (apt-get install the package that ships it)")
    return path

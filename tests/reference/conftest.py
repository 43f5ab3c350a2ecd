"""Fixtures of the side-by-side tests against Debian's blackbox_exporter: the prober tests' local servers.

The plain helpers (running the Go binary, probing through both, comparing) are in tests/support/blackbox_reference.py.
"""

from __future__ import annotations

from tests.support.http_server import (  # noqa: F401 - fixtures, used by name
    http_server,
    https_h1_server,
    https_server,
    tls_material,
)

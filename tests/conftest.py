"""Fixtures shared by every test directory (the plain helpers they use live in tests/support)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.plain_http import start_plain_target


@pytest.fixture(scope="session")
def plain_http_target() -> Iterator[str]:
    """http://127.0.0.1:PORT of a tiny HTTP/1.1 server: / answers 200, /status/N answers N."""
    server = start_plain_target()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()

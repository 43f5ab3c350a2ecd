"""Fixtures shared by every test directory: paths, a free port and a plain local HTTP target."""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DEBIAN_BLACKBOX_EXAMPLES = Path("/usr/share/doc/prometheus-blackbox-exporter/examples")


def require_file(path: Path) -> Path:
    """Tests that read files installed by Debian packages: skip on a laptop, fail in CI."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: .ci/run should have installed it")
        pytest.skip(f"{path} not installed (apt-get install the package that ships it)")
    return path


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A 127.0.0.1 port (TCP, or UDP with SOCK_DGRAM) that nothing is bound to right now: for a server
    started next to bind, or as a refused / unreachable target."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/status/"):
            code = int(self.path.rsplit("/", 1)[1])
            body = b""
        else:
            code, body = 200, b"hello from the test target\n"
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def plain_http_target() -> Iterator[str]:
    """http://127.0.0.1:PORT of a tiny HTTP/1.1 server: / answers 200, /status/N answers N."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()

"""A tiny HTTP/1.1 target: / answers 200 with a short body, /status/N answers N."""

from __future__ import annotations

import http.server
import threading


class PlainTargetHandler(http.server.BaseHTTPRequestHandler):
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


def start_plain_target() -> http.server.ThreadingHTTPServer:
    """The target, serving on 127.0.0.1:<ephemeral> from a daemon thread; `shutdown()` and
    `server_close()` it when done."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PlainTargetHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

"""A listener that records every request it receives and answers 200: the "outside host" of the
redirect tests, to show what reached it (or that nothing did)."""

from __future__ import annotations

import socket
import threading


class CaptureServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self._listener = socket.create_server((host, 0))
        self.port = self._listener.getsockname()[1]
        self.requests: list[bytes] = []  # each request's head, as received
        self.connections = 0
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(5)
                head = b""
                try:
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                    self.requests.append(head)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                except OSError:
                    pass

    @property
    def paths(self) -> list[str]:
        """The request targets it was asked for, in order."""
        return [head.split(b" ", 2)[1].decode() for head in self.requests if head.count(b" ") >= 2]

    def close(self) -> None:
        self._listener.close()

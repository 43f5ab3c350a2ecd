"""Ephemeral loopback ports, so parallel test runs never collide."""

from __future__ import annotations

import socket


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A 127.0.0.1 port (TCP, or UDP with SOCK_DGRAM) that nothing is bound to right now: for a server
    started next to bind, or as a refused / unreachable target."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

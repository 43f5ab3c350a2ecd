"""Listener limits: a request-head deadline, an idle keep-alive timeout and a cap on open connections.

uvicorn's HTTP protocols (httptools and h11) wait for a request head forever, and a process at its
open-files limit can no longer accept the scrape it exists for, nor open a probe's socket. So every
connection is tracked from `connection_made` (asyncio's Protocol API) in one of three states:

- `head`: waiting for the end of a request head (`\\r\\n\\r\\n`), from the accept (the first request)
  or from the first byte after an idle period (later ones). After `read_header_timeout` it is closed,
  as Go's `http.Server.ReadHeaderTimeout` does; a head over `MAX_HEAD_BYTES` gets a 431 and is closed.
- `busy`: a request is being answered; never closed by these limits.
- `idle`: between a response and the next request; uvicorn closes it after `idle_timeout`.

At most `max_connections` are open (default half the soft open-files limit, leaving the other half to
probes). A connection over the cap evicts the one that has waited longest for a request head (else the
longest idle one), so that a flood of half-open sockets cannot lock out a real scraper, whose head
arrives at once; if every connection is busy, the new one is closed at once instead.

What this relies on from uvicorn beyond asyncio's Protocol methods: `on_response_complete()`, the
callback both of its HTTP protocols give each request cycle (`tests/web/test_listener.py` checks that
it is still there). With TLS, a connection counts from the end of its handshake (asyncio's handshake
timeout, 60 s, covers the handshake itself).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from probe_exporter import logs
from probe_exporter.openfiles import open_files_limit

DEFAULT_READ_HEADER_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 30  # seconds; uvicorn takes whole seconds
# A request head larger than this is refused with 431 (h11's own default is 16 KiB; scrapes send < 1 KiB).
MAX_HEAD_BYTES = 64 * 1024
# How often deadlines are checked: a connection is closed between its deadline and this much later.
SWEEP_INTERVAL = 0.25
# Refused, evicted and timed-out connections are logged as one summary line at most this often.
SUMMARY_INTERVAL = 10.0
_HEAD_TOO_LARGE_BODY = b"Request Header Fields Too Large\n"
HEAD_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(_HEAD_TOO_LARGE_BODY)) + _HEAD_TOO_LARGE_BODY

State = Literal["head", "busy", "idle"]


def default_max_connections() -> int:
    """Half the soft open-files limit (as raised at startup): the other half stays for probes, DNS,
    config files and the rest."""
    return max(16, open_files_limit() // 2)


@dataclass(frozen=True)
class ListenerLimits:
    read_header_timeout: float = DEFAULT_READ_HEADER_TIMEOUT
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT
    max_connections: int = 0  # 0: default_max_connections()

    def connection_cap(self) -> int:
        return self.max_connections or default_max_connections()


class _Tracked:
    """What the guard knows of one connection."""

    __slots__ = ("head_bytes", "since", "state", "tail", "transport")

    def __init__(self, transport: asyncio.BaseTransport, now: float) -> None:
        self.transport = transport
        self.state: State = "head"
        self.since = now
        self.head_bytes = 0
        self.tail = b""  # the last bytes seen, for a head end split across two reads


class ConnectionGuard:
    """The open connections of one server, their deadlines and the cap."""

    def __init__(self, limits: ListenerLimits) -> None:
        self.limits = limits
        self.cap = limits.connection_cap()
        self.open: dict[object, _Tracked] = {}  # protocol -> state, oldest first
        self.counts = {"refused": 0, "evicted": 0, "header_timeout": 0, "head_too_large": 0}
        self._sweeper: asyncio.TimerHandle | None = None
        self._last_summary = time.monotonic()

    def admit(self, protocol: object, transport: asyncio.BaseTransport) -> bool:
        """Track a new connection; False when it was closed at once (over the cap, nothing to evict)."""
        now = time.monotonic()
        if len(self.open) >= self.cap and not self._evict_one():
            self.counts["refused"] += 1
            transport.close()
            return False
        self.open[protocol] = _Tracked(transport, now)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep)
        return True

    def release(self, protocol: object) -> None:
        self.open.pop(protocol, None)

    def data(self, protocol: object, data: bytes) -> bool:
        """Account for received bytes; False when the connection was closed for them."""
        tracked = self.open.get(protocol)
        if tracked is None or tracked.state == "busy":
            return True
        if tracked.state == "idle":  # the first bytes of the next request: its head deadline starts now
            tracked.state, tracked.since, tracked.head_bytes, tracked.tail = "head", time.monotonic(), 0, b""
        window = tracked.tail + data
        if b"\r\n\r\n" in window or b"\n\n" in window:
            tracked.state = "busy"
            return True
        tracked.head_bytes += len(data)
        tracked.tail = window[-3:]
        if tracked.head_bytes > MAX_HEAD_BYTES:
            self.counts["head_too_large"] += 1
            self._close(protocol, tracked, HEAD_TOO_LARGE)
            return False
        return True

    def response_complete(self, protocol: object) -> None:
        tracked = self.open.get(protocol)
        if tracked is not None:
            tracked.state, tracked.since = "idle", time.monotonic()

    def _evict_one(self) -> bool:
        """Close the connection waiting longest for a head (else the longest idle); False if all are busy."""
        for state in ("head", "idle"):
            waiting = [(tracked.since, protocol) for protocol, tracked in self.open.items() if tracked.state == state]
            if waiting:
                protocol = min(waiting, key=lambda item: item[0])[1]
                self.counts["evicted"] += 1
                self._close(protocol, self.open[protocol])
                return True
        return False

    def _close(self, protocol: object, tracked: _Tracked, last_words: bytes = b"") -> None:
        self.open.pop(protocol, None)  # gone from the count now; asyncio closes the socket next
        transport: Any = tracked.transport
        if last_words and not transport.is_closing():
            transport.write(last_words)
        transport.close()

    def _sweep(self) -> None:
        now = time.monotonic()
        deadline = now - self.limits.read_header_timeout
        expired = [(protocol, tracked) for protocol, tracked in self.open.items()
                   if tracked.state == "head" and tracked.since <= deadline]
        for protocol, tracked in expired:
            self.counts["header_timeout"] += 1
            self._close(protocol, tracked)
        if now - self._last_summary >= SUMMARY_INTERVAL and any(self.counts.values()):
            logs.log(logging.INFO, "Closed connections over the listener limits", open=len(self.open),
                     max_connections=self.cap, read_header_timeout_seconds=self.limits.read_header_timeout,
                     **self.counts)
            self.counts = dict.fromkeys(self.counts, 0)
            self._last_summary = now
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep) if self.open else None


def bounded_protocol(guard: ConnectionGuard, base: type[asyncio.Protocol] = AutoHTTPProtocol) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with the guard's limits applied to every connection."""
    parent: type = base

    class BoundedHTTPProtocol(parent):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            guard.admit(self, transport)

        def data_received(self, data: bytes) -> None:
            if guard.data(self, data):
                super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            guard.response_complete(self)

        def connection_lost(self, exc: Exception | None) -> None:
            guard.release(self)
            super().connection_lost(exc)

    return BoundedHTTPProtocol

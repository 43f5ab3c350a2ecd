"""Phase timings of an HTTP probe: per-round-trip timestamps, summed into probe_http_duration_seconds."""

from __future__ import annotations

import time
from typing import Any

from probe_exporter.probe_metrics import GaugeVec

PHASES = ("connect", "tls", "processing", "transfer")


class Trace:
    """Timestamps (time.monotonic) of one round trip. The lean exchange sets them from its protocol
    callbacks; httpcore's `trace` extension feeds them through __call__."""

    __slots__ = ("connect_done", "connect_start", "end", "resolve", "response_start", "tls", "tls_done",
                 "tls_start")

    def __init__(self, tls: bool) -> None:
        self.tls = tls
        self.resolve = 0.0
        self.connect_start = self.connect_done = self.tls_start = self.tls_done = 0.0
        self.response_start = self.end = 0.0

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith(".started"):
            if event.endswith("connect_tcp.started"):
                self.connect_start = time.monotonic()
            elif event.endswith("start_tls.started"):
                self.tls_start = time.monotonic()
        elif event.endswith(".complete"):
            if event.endswith("receive_response_headers.complete"):
                self.response_start = time.monotonic()
            elif event.endswith("connect_tcp.complete"):
                self.connect_done = time.monotonic()
            elif event.endswith("start_tls.complete"):
                self.tls_done = time.monotonic()

    @property
    def got_conn(self) -> float:
        return self.tls_done if self.tls else self.connect_done


def add_phases(durations: GaugeVec, traces: list[Trace]) -> None:
    """upstream's per-roundtrip sums; the first hop's resolve came from chooseProtocol."""
    connect, tls, processing, transfer = (durations.labels(p) for p in PHASES)
    for index, trace in enumerate(traces):
        if index:  # with skip_resolve_phase_with_proxy, `resolve` appears only after a redirect
            durations.labels("resolve").add(trace.resolve)
        got_conn = trace.got_conn
        if not got_conn:
            continue
        start = trace.connect_start or got_conn
        if trace.tls:
            connect.add((trace.connect_done or start) - start)
            tls.add(trace.tls_done - (trace.tls_start or trace.tls_done))
        else:
            connect.add(got_conn - start)
        if not trace.response_start:
            continue
        processing.add(trace.response_start - got_conn)
        if trace.end:
            transfer.add(trace.end - trace.response_start)

"""A module's PDUs rendered while its walk is still under way.

A walk is a chain of request, wait, answer. The agent's share of each round trip is idle time for
the exporter, and a scrape's rendering (PDUs to samples, ~4 µs a varbind) came after the last answer,
on the scrape's critical path. Here the walk hands over each answer's PDUs as they arrive, and they
are rendered in a loop callback that runs once the next request is sent: behind the agent's work,
not after it.

A sample can be rendered early only if it cannot change later. That holds when no OID can arrive
twice (ModulePlan.progressive: then "a later PDU with the same OID wins" never applies) and the PDUs
its labels need have all arrived: MetricPlan.ready_after counts the phases (the gets, then each walk
root in order) its lookups and combined-type columns come from. Samples that must wait are rendered
when their last phase completes. The samples are the ones render_module makes; only the order they
are added in differs, and the exposition sorts them.

The overlap only pays while the worker would otherwise wait. With other walks in flight in the
worker, their packets fill the waits already, and rendering between answers cost more CPU than it
saved wall time (20 concurrent rounds: 1.37x snmp_exporter's CPU against 1.30x after the walk). So
answers are then only queued, and rendered by `finish` (or once this walk is alone again).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator

from probe_exporter.probers.snmp import render
from probe_exporter.probers.snmp.plan import MetricPlan, ModulePlan
from probe_exporter.probers.snmp.render import RENDER_SLICE, Families, LabelCache, full_collections_deferred
from probe_exporter.probers.snmp.values import Value
from probe_exporter.probers.snmp.walk import OidValue

_Waiting = tuple[MetricPlan, tuple[int, ...], Value]
# Work in arrival order: PDUs of an answer, the end of a phase (None), or waiting samples now ready.
_Work = list[OidValue] | None | tuple[list[_Waiting]]

_walking = 0  # ProgressiveRenders of this process not finished or cancelled yet


class ProgressiveRender:
    """What walk.scrape reports to (`received`, `phase_done`) for a progressive module; `finish`
    renders what is left after the last answer."""

    def __init__(self, plan: ModulePlan, out: Families, wrap_counters: bool = True) -> None:
        self._plan = plan
        self._out = out
        self._wrap = wrap_counters
        self._by_oid: dict[tuple[int, ...], Value] = {}  # every PDU so far: what lookups read
        self._label_cache: LabelCache = {}
        self._work: deque[_Work] = deque()
        self._waiting: dict[int, list[_Waiting]] = {}  # phase count -> samples waiting for it
        self._phases_done = 0
        self._handle: asyncio.Handle | None = None
        self._counted = True
        global _walking
        _walking += 1

    def received(self, pdus: list[OidValue]) -> None:
        if pdus:
            self._work.append(pdus)
            self._schedule()

    def phase_done(self) -> None:
        self._work.append(None)
        self._schedule()

    def _schedule(self) -> None:
        # call_soon: the callback runs after the walk's current step, which sends the next request.
        if self._handle is None and _walking == 1:
            self._handle = asyncio.get_running_loop().call_soon(self._run_slice)

    def _run_slice(self) -> None:
        self._handle = None
        if self._render(RENDER_SLICE):
            self._schedule()  # more than a slice queued (a cached table, a released one): yield between

    def _render(self, budget: int) -> bool:
        """Render queued work, about `budget` PDUs of it; whether work is left."""
        work = self._work
        while work and budget > 0:
            item = work.popleft()
            if item is None:
                self._phases_done += 1
                released = self._waiting.pop(self._phases_done, None)
                if released:
                    work.appendleft((released,))
                continue
            if isinstance(item, tuple):
                waiting = item[0]
                if len(waiting) > budget:
                    work.appendleft((waiting[budget:],))
                    waiting = waiting[:budget]
                self._render_waiting(waiting)
                budget -= len(waiting)
                continue
            if len(item) > budget:
                work.appendleft(item[budget:])
                item = item[:budget]
            self._take(item)
            budget -= len(item)
        return bool(work)

    def _take(self, pdus: list[OidValue]) -> None:
        by_oid, match, done = self._by_oid, self._plan.match, self._phases_done
        out, wrap, rendered, label_cache = self._out, self._wrap, self._out.rendered, self._label_cache
        render_pdu = render.render_pdu
        for oid, value in pdus:
            by_oid[oid] = value
            found = match(oid)
            if found is None:
                continue
            metric_plan, index = found
            if metric_plan.ready_after <= done:
                render_pdu(out, metric_plan, index, value, by_oid, wrap, rendered, label_cache)
            else:
                self._waiting.setdefault(metric_plan.ready_after, []).append((metric_plan, index, value))

    def _render_waiting(self, waiting: list[_Waiting]) -> None:
        by_oid, out, wrap, label_cache = self._by_oid, self._out, self._wrap, self._label_cache
        render_pdu = render.render_pdu
        for metric_plan, index, value in waiting:
            render_pdu(out, metric_plan, index, value, by_oid, wrap, out.rendered, label_cache)

    async def finish(self) -> None:
        """Everything still queued or waiting, in slices that let other probes run between them."""
        self.cancel()
        queued = sum(len(item) if isinstance(item, list) else len(item[0]) for item in self._work if item is not None)
        huge = queued + sum(len(waiting) for waiting in self._waiting.values()) > RENDER_SLICE
        with full_collections_deferred() if huge else contextlib.nullcontext():
            for _ in self._remaining_slices():
                await asyncio.sleep(0)

    def _remaining_slices(self) -> Iterator[None]:
        while True:
            while self._render(RENDER_SLICE):
                yield
            if not self._waiting:
                return
            # Samples waiting for a phase the walk never reported (a walk reports every phase).
            self._work.extend((self._waiting.pop(phase),) for phase in sorted(self._waiting))

    def cancel(self) -> None:
        global _walking
        if self._counted:
            self._counted = False
            _walking -= 1
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

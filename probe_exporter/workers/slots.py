"""Concurrency limits of the whole exporter: `--probes.max-concurrency` and each module's
`max_concurrency` count the probes of every worker.

The counts live in the shared block (workers/shared.py). Taking a slot never blocks the event loop:
a try under a lock held for a few microseconds, and while the limit is reached, a retry after a
pause that doubles up to MAX_POLL_SECONDS. Within a worker, probes still queue first on the
limiter's own asyncio semaphores (first come, first served), so only the head of each worker's
queue polls.

What a limiter calls:

    slots.acquire(name, limit, deadline) -> bool   # deadline: a time.monotonic() value, or None to wait
                                                   # until cancelled; False when the deadline passed
    slots.release(name)                            # once per successful acquire

`name` is a module name, or GLOBAL for the global limit.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from probe_exporter.workers.shared import SharedBlock

GLOBAL = "\0global"  # no module name has a NUL
FIRST_POLL_SECONDS = 0.0005
MAX_POLL_SECONDS = 0.01


class Acquirable(Protocol):
    """What the limiter holds for a probe: an asyncio.Semaphore, or a slot counted over workers."""

    async def acquire(self) -> object: ...

    def release(self) -> None: ...


class SharedSlots:
    def __init__(self, block: SharedBlock, worker: int) -> None:
        self._block = block
        self._worker = worker

    async def acquire(self, name: str, limit: int, deadline: float | None = None) -> bool:
        pause = FIRST_POLL_SECONDS
        while not self._block.try_take(self._worker, name, limit):
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                pause = min(pause, left)
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_POLL_SECONDS)
        return True

    def release(self, name: str) -> None:
        self._block.give_back(self._worker, name)

    def taken(self, name: str) -> int:
        return self._block.taken(name)

    def across_workers(self, local: list[Acquirable], module_name: str, module_limit: int,
                       global_limit: int) -> list[Acquirable]:
        """The limiter's own semaphores (`local`: the module's if module_limit > 0, then the global
        one if global_limit > 0), each followed by its exporter-wide slot: a probe holds its module's
        slots before it takes a global one, so a saturated module does not hold global slots."""
        remaining = iter(local)
        held: list[Acquirable] = []
        for name, limit in ((module_name, module_limit), (GLOBAL, global_limit)):
            if limit > 0:
                held += [next(remaining), _Slot(self, name, limit)]
        return held


class _Slot:
    """One exporter-wide slot, shaped like an asyncio.Semaphore for the limiter."""

    def __init__(self, slots: SharedSlots, name: str, limit: int) -> None:
        self._slots, self._name, self._limit = slots, name, limit

    async def acquire(self) -> bool:
        return await self._slots.acquire(self._name, self._limit)  # the probe's deadline cancels it

    def release(self) -> None:
        self._slots.release(self._name)

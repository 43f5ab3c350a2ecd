"""Concurrency limits of the whole exporter: `--probes.max-concurrency` and each module's
`max_concurrency` count the probes of every worker.

The counts live in the shared block (workers/shared.py). Taking a slot never blocks the event loop:
a try under a lock held for a few microseconds, and while the limit is reached, a retry after a
pause that doubles up to MAX_POLL_SECONDS. Within a worker, probes still queue first on the
limiter's own asyncio semaphores (first come, first served), so only the head of each worker's
queue polls.

What a limiter calls (limits.ProbeLimiter.slot does, once it holds its own semaphore of that limit):

    slots.acquire(name, limit, deadline) -> bool   # deadline: a time.monotonic() value, or None to wait
                                                   # until cancelled; False when the deadline passed
    slots.release(name)                            # once per successful acquire

`name` is a module name, or SharedSlots.GLOBAL for the global limit.
"""

from __future__ import annotations

import asyncio
import time

from probe_exporter.workers.shared import SharedBlock

GLOBAL = "\0global"  # no module name has a NUL
FIRST_POLL_SECONDS = 0.0005
MAX_POLL_SECONDS = 0.01


class SharedSlots:
    GLOBAL = GLOBAL

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

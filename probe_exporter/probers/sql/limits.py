"""Concurrency limits: process-wide, per module and per (module, target).

Waiting for a slot counts against the probe's deadline: a probe that cannot get one in time fails
with "queued too long" instead of piling up connections on a slow server. State lives per event loop
(asyncio primitives belong to one loop; tests and the CLI may run several in one process).
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from probe_exporter.probers.sql.cache import CollectorCache

# Process-wide cap on SQL probes running at once, whatever their module.
GLOBAL_LIMIT = int(os.environ.get("PROBE_EXPORTER_SQL_MAX_CONCURRENCY", "100"))
_MAX_TARGET_KEYS = 4096


class QueueTimeout(Exception):
    """No slot became free before the probe's deadline."""


class ProberState:
    def __init__(self) -> None:
        self.global_slots = asyncio.Semaphore(GLOBAL_LIMIT)
        self.module_slots: dict[str, asyncio.Semaphore] = {}
        self.target_slots: OrderedDict[tuple[str, str], asyncio.Semaphore] = OrderedDict()
        self.cache = CollectorCache()

    def module_semaphore(self, module_key: str, size: int) -> asyncio.Semaphore:
        semaphore = self.module_slots.get(module_key)
        if semaphore is None:
            semaphore = self.module_slots[module_key] = asyncio.Semaphore(size)
        return semaphore

    def target_semaphore(self, module_key: str, target_key: str, size: int) -> asyncio.Semaphore:
        key = (module_key, target_key)
        semaphore = self.target_slots.get(key)
        if semaphore is None:
            semaphore = self.target_slots[key] = asyncio.Semaphore(size)
            self._evict_idle()
        else:
            self.target_slots.move_to_end(key)
        return semaphore

    def _evict_idle(self) -> None:
        # Targets come from URLs, so the map must stay bounded; only idle semaphores can go.
        while len(self.target_slots) > _MAX_TARGET_KEYS:
            for key, semaphore in self.target_slots.items():
                if not semaphore.locked() and not getattr(semaphore, "_waiters", None):
                    del self.target_slots[key]
                    break
            else:
                return


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ProberState] = weakref.WeakKeyDictionary()


def state() -> ProberState:
    loop = asyncio.get_running_loop()
    current = _states.get(loop)
    if current is None:
        current = _states[loop] = ProberState()
    return current


@asynccontextmanager
async def probe_slots(module_key: str, target_key: str, per_module: int, per_target: int,
                      timeout: float) -> AsyncIterator[None]:
    """Hold a global, a module and a target slot; QueueTimeout if they are not free within `timeout`."""
    current = state()
    # Narrowest first: a probe queued behind its own target does not hold a global slot meanwhile.
    semaphores = (current.target_semaphore(module_key, target_key, per_target),
                  current.module_semaphore(module_key, per_module), current.global_slots)
    async with AsyncExitStack() as stack:
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                for semaphore in semaphores:
                    await stack.enter_async_context(semaphore)
        except TimeoutError:
            raise QueueTimeout from None
        yield

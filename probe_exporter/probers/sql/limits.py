"""The SQL prober's per-event-loop state: the collector cache (min_interval, single flight).

Concurrency limits are not here: the module's max_concurrency and max_concurrency_per_target (the
sql: block's spellings fold into them) are applied by the one limiter every probe goes through
(probe_exporter.limits, in the pipeline), inside the probe's deadline. State lives per event loop
(asyncio primitives belong to one loop; tests and the CLI may run several in one process).
"""

from __future__ import annotations

import asyncio
import weakref

from probe_exporter.probers.sql.cache import CollectorCache


class ProberState:
    def __init__(self) -> None:
        self.cache = CollectorCache()


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ProberState] = weakref.WeakKeyDictionary()


def state() -> ProberState:
    loop = asyncio.get_running_loop()
    current = _states.get(loop)
    if current is None:
        current = _states[loop] = ProberState()
    return current

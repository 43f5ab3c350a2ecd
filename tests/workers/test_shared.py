"""The exporter-wide slot counts in shared memory, as two workers of one block see them."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from probe_exporter.workers.shared import SharedBlock
from probe_exporter.workers.slots import GLOBAL, SharedSlots


def test_slots_count_over_workers_and_a_dead_workers_slots_come_back(tmp_path: Path) -> None:
    block = SharedBlock(2, str(tmp_path / "lock"))
    first, second = SharedSlots(block, 0), SharedSlots(block, 1)

    async def scenario() -> None:
        assert await first.acquire("mod", 2)
        assert await second.acquire("mod", 2)
        # The limit is reached over both workers: a third probe waits until its deadline, then gives up.
        assert not await second.acquire("mod", 2, deadline=time.monotonic() + 0.05)
        assert await second.acquire(GLOBAL, 1)  # another limit, counted on its own
        second.release("mod")
        assert await first.acquire("mod", 2, deadline=time.monotonic() + 1)
        assert first.taken("mod") == 2
        block.forget_worker(0)  # worker 0 died holding two slots: the parent frees them
        assert first.taken("mod") == 0 and second.taken(GLOBAL) == 1

    asyncio.run(scenario())


def test_a_forked_worker_sees_the_parents_block(tmp_path: Path) -> None:
    block = SharedBlock(2, str(tmp_path / "lock"))
    pid = os.fork()
    if pid == 0:
        os._exit(0 if block.try_take(1, "mod", 1) else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert block.taken("mod") == 1 and not block.try_take(0, "mod", 1)

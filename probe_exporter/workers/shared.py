"""The memory every worker shares: one anonymous MAP_SHARED block the parent maps before the fork.

Fixed layout of int64 cells (x86-64 and arm64 read and write an aligned int64 whole):

    restarts | config generation | tree CPU seconds (float) | checksum of the committed config (8 cells)
    pid of worker 0..N-1
    slot keys (K hashes of a limit's name) | slot counts, one row of K per worker

A worker changes only its own row of counts, so the parent can zero the row of a worker that died
with slots held. Check-and-take of a slot is under an flock on a file in the private directory: the
kernel drops an flock when its holder dies, so a worker killed inside the critical section cannot
wedge the others, as a semaphore in shared memory would.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
from collections.abc import Iterator

SLOTS = 1024  # distinct limits (modules with max_concurrency, plus the global one)
_CELL = 8
_RESTARTS, _GENERATION, _CPU, _CHECKSUM = 0, 1, 2, 3
_CHECKSUM_CELLS = 8
_PIDS = _CHECKSUM + _CHECKSUM_CELLS


class SharedBlock:
    def __init__(self, workers: int, lock_path: str) -> None:
        self.workers = workers
        self._keys = _PIDS + workers
        self._counts = self._keys + SLOTS
        self._map = mmap.mmap(-1, (self._counts + workers * SLOTS) * _CELL)  # MAP_SHARED|MAP_ANONYMOUS
        self._cells = memoryview(self._map).cast("q")
        self._lock_path = lock_path
        open(lock_path, "wb").close()
        # An flock belongs to an open file description, which a fork shares: each process opens its own.
        self._lock_fd: tuple[int, int] | None = None  # (pid, fd)
        self._depth = 0
        self._slot_of: dict[str, int] = {}

    # --- the exporter's state ------------------------------------------------------------------------

    @property
    def restarts(self) -> int:
        return int(self._cells[_RESTARTS])

    def count_restart(self) -> None:  # the parent only
        self._cells[_RESTARTS] += 1

    def set_pid(self, index: int, pid: int) -> None:
        self._cells[_PIDS + index] = pid

    def pids(self) -> dict[int, int]:
        """worker index -> pid, of the workers running now."""
        return {index: int(self._cells[_PIDS + index]) for index in range(self.workers)
                if self._cells[_PIDS + index]}

    def committed_config(self) -> tuple[int, str]:
        """(generation, checksum) of the config the workers last switched to together (generation 0:
        the one the parent loaded)."""
        raw = self._map[_CHECKSUM * _CELL:(_CHECKSUM + _CHECKSUM_CELLS) * _CELL]
        return int(self._cells[_GENERATION]), raw.rstrip(b"\0").decode()

    def commit_config(self, checksum: str) -> int:
        with self.locked():
            encoded = checksum.encode()[:_CHECKSUM_CELLS * _CELL].ljust(_CHECKSUM_CELLS * _CELL, b"\0")
            self._map[_CHECKSUM * _CELL:(_CHECKSUM + _CHECKSUM_CELLS) * _CELL] = encoded
            self._cells[_GENERATION] += 1
            return int(self._cells[_GENERATION])

    def monotonic_cpu(self, seconds: float) -> float:
        """`seconds`, or the most any worker reported before if that was more: the tree's CPU time
        dips for a moment while a dead worker waits to be reaped, and a counter must not."""
        with self.locked():
            (before,) = struct.unpack_from("d", self._map, _CPU * _CELL)
            if seconds > before:
                struct.pack_into("d", self._map, _CPU * _CELL, seconds)
                return seconds
            return float(before)

    # --- concurrency slots ---------------------------------------------------------------------------

    def try_take(self, worker: int, name: str, limit: int) -> bool:
        """Take one of `limit` slots named `name` for `worker`, if fewer than `limit` are taken."""
        with self.locked():
            slot = self._slot(name)
            cells = self._cells
            taken = sum(cells[self._counts + row * SLOTS + slot] for row in range(self.workers))
            if taken >= limit:
                return False
            cells[self._counts + worker * SLOTS + slot] += 1
            return True

    def give_back(self, worker: int, name: str) -> None:
        # Only this worker writes its row: no lock needed.
        self._cells[self._counts + worker * SLOTS + self._slot(name)] -= 1

    def taken(self, name: str) -> int:
        slot = self._slot(name)
        return sum(int(self._cells[self._counts + row * SLOTS + slot]) for row in range(self.workers))

    def forget_worker(self, index: int) -> None:
        """The parent, once worker `index` is dead: its slots are free, its pid gone."""
        self._cells[_PIDS + index] = 0
        start = self._counts + index * SLOTS
        self._cells[start:start + SLOTS] = memoryview(bytes(SLOTS * _CELL)).cast("q")

    def _slot(self, name: str) -> int:
        slot = self._slot_of.get(name)
        if slot is not None:
            return slot
        key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little", signed=True) or 1
        with self.locked():
            start = key % SLOTS
            for probe in range(SLOTS):  # open addressing; keys are never removed
                slot = (start + probe) % SLOTS
                current = self._cells[self._keys + slot]
                if current in (0, key):
                    self._cells[self._keys + slot] = key
                    break
            else:
                raise RuntimeError(f"more than {SLOTS} concurrency limits")
        self._slot_of[name] = slot
        return slot

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        # Re-entrant within a process: _slot takes the lock and try_take calls it under the lock.
        pid = os.getpid()
        if self._lock_fd is None or self._lock_fd[0] != pid:
            self._lock_fd = (pid, os.open(self._lock_path, os.O_RDWR | os.O_CLOEXEC))
            self._depth = 0
        fd = self._lock_fd[1]
        if self._depth == 0:
            fcntl.flock(fd, fcntl.LOCK_EX)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                fcntl.flock(fd, fcntl.LOCK_UN)

"""`--web.workers`: several worker processes that act as one exporter.

The parent imports everything, loads the config, binds the listening sockets, freezes that heap and
forks the workers, which share those pages until they write to them. The parent then only supervises
(workers/supervisor.py): it relays signals and replaces a worker that dies. What makes the workers
look like one exporter lives in a private directory and a shared memory block the parent creates
before the fork (workers/cluster.py): prometheus_client's multiprocess files for /metrics, one unix
socket per worker for the history and for reloads, and the exporter-wide concurrency counters.
"""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: taskset, cgroup cpusets), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def worker_count(requested: int) -> int:
    """`--web.workers N`: N, or one per usable CPU for 0 (the default)."""
    return requested if requested > 0 else usable_cpus()

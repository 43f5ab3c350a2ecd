"""/proc readings over an exporter's process tree: probe_exporter forks one worker per core by
default, so a reading of the first process alone would miss nearly all of its work."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """The process and its descendants, found through every thread's children list."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime over the process tree (all threads), from /proc/PID/stat."""
    total = 0
    for tree_pid in process_tree(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{tree_pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def status_kib(pid: int, field: str) -> int:
    """A /proc/PID/status field (VmRSS, VmHWM, ...) summed over the process tree, in KiB: pages the
    workers share count once per process, so this is an upper bound."""
    total = 0
    for tree_pid in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{tree_pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1])
    return total


def pss_kib(pid: int) -> int:
    """Proportional set size of one process, in KiB: pages it shares are split between the sharers."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def tree_pss_kib(pid: int) -> int:
    """PSS summed over the process tree: every page counted once in all."""
    return sum(pss_kib(tree_pid) for tree_pid in process_tree(pid))

"""/metrics for the whole exporter, whichever worker answers.

Each worker's prometheus_client metrics live in mmap files in the private directory
(prometheus_client's multiprocess mode, switched on in the worker right after the fork, before any
of its metrics exist). The answering worker merges every worker's files, dead workers' included: a
counter keeps what a worker that died had counted, so it never goes backwards when the worker is
replaced. Gauges merge by their `multiprocess_mode` (live* modes forget a dead worker's file).

What is not in the files comes from here: the process metrics of the whole tree (a counter from one
worker would jump between scrapes), the running workers and their restarts. The answering worker's
own collectors add what only they have (the SNMP module list, python_info); its per-process GC
counters are left out, as they would go backwards from one worker to the next.
"""

from __future__ import annotations

import os
import resource
import struct
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import Histogram, values
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector, CollectorRegistry

from probe_exporter.workers.shared import SharedBlock

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Families only the answering worker's registry can give right: the config it runs (a label that a
# reload removes would stay in the files) and the workers (below).
ANSWERING_WORKER_VIEW = frozenset({"probe_exporter_config_modules"})
# Families of one process that this module replaces with the tree's, or drops.
PER_PROCESS = ("process_", "python_gc_", "probe_exporter_worker_info")
FILE_RACE_RETRIES = 3
# Histograms each worker reports under its own `worker` label (see per_worker).
PER_WORKER = frozenset({"probe_exporter_event_loop_lag_seconds"})

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def enable_multiprocess(directory: str) -> None:
    """In a worker, before its first metric: every metric from now on writes to files in `directory`."""
    os.environ[MULTIPROC_ENV] = directory
    # Gauge.clear() still clears the worker's own view, which is what ANSWERING_WORKER_VIEW serves.
    warnings.filterwarnings("ignore", "Clearing labels has not been implemented in multi-process mode",
                            UserWarning)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def per_worker(registry: CollectorRegistry, histogram: Histogram, worker: int) -> Histogram:
    """`histogram` again with a `worker` label, as this worker's child: the files would otherwise sum
    every worker into one series, where one saturated worker (the event-loop lag) must show on its own.
    A replacement adds to its index's series, so it never goes backwards either."""
    registry.unregister(histogram)
    labelled = Histogram(histogram._name, histogram._documentation, ["worker"], registry=registry,
                         buckets=histogram._upper_bounds)
    return labelled.labels(str(worker))


def forget_process(directory: str, pid: int) -> None:
    """The parent, once `pid` is dead: its live* gauges go (its counters and histograms stay)."""
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


class ExporterWideRegistry(CollectorRegistry):
    """Served as the worker's `exporter.metrics.registry`. Collectors registered on it (the SNMP
    stats) go to the worker's own registry, which this one consults."""

    def __init__(self, own: CollectorRegistry, directory: str, block: SharedBlock) -> None:
        super().__init__(auto_describe=False)
        self._own = own
        self._files = MultiProcessCollector(None, directory)  # type: ignore[no-untyped-call]
        self._tree = _TreeCollector(block)

    def register(self, collector: Collector) -> None:
        self._own.register(collector)

    def unregister(self, collector: Collector) -> None:
        self._own.unregister(collector)

    def collect(self) -> Iterator[Metric]:
        # The own registry first: its collectors may create label children (each SNMP module's
        # duration series) that must be in the files before they are read.
        own = list(self._own.collect())
        merged = [family for family in self._merged_files()
                  if family.name not in ANSWERING_WORKER_VIEW and not family.name.startswith(PER_PROCESS)]
        names = {family.name for family in merged}
        for family in merged:
            if family.name in PER_WORKER:  # the series of the metric before per_worker() labelled it: all 0
                family.samples = [sample for sample in family.samples if "worker" in sample.labels]
        yield from merged
        for family in own:
            if family.name in ANSWERING_WORKER_VIEW or (
                    family.name not in names and not family.name.startswith(PER_PROCESS)):
                yield family
        yield from self._tree.collect()

    def _merged_files(self) -> list[Metric]:
        for _ in range(FILE_RACE_RETRIES):
            try:
                return list(self._files.collect())  # type: ignore[no-untyped-call]
            # The parent removed a dead worker's gauge file between glob and open, a starting worker's
            # file is still empty (prometheus_client creates it, then sizes it), or an entry is half
            # written (its key is then not JSON, or not UTF-8 yet: ValueError).
            except (FileNotFoundError, struct.error, ValueError):
                continue
        return list(self._files.collect())  # type: ignore[no-untyped-call]


class _TreeCollector:
    """process_* of the parent and its workers together, and the workers themselves."""

    def __init__(self, block: SharedBlock) -> None:
        self._block = block
        self._parent = os.getppid()

    def collect(self) -> Iterable[Metric]:
        workers = self._block.pids()
        parent = _stat(self._parent)
        cpu = (parent[11] + parent[12] + parent[13] + parent[14]) / _TICKS  # cutime/cstime: reaped workers
        rss = parent[21] * _PAGE
        vms = parent[20]
        fds = _open_fds(self._parent)
        for pid in workers.values():
            try:
                stat = _stat(pid)
                fds += _open_fds(pid)
            except OSError:  # died since the table was read: counted in the parent's cutime once reaped
                continue
            cpu += (stat[11] + stat[12]) / _TICKS
            rss += stat[21] * _PAGE
            vms += stat[20]
        yield CounterMetricFamily("process_cpu_seconds", "Total user and system CPU time spent in seconds, "
                                  "parent and workers together.", value=self._block.monotonic_cpu(cpu))
        yield GaugeMetricFamily("process_virtual_memory_bytes", "Virtual memory size in bytes, summed over "
                                "the parent and its workers.", value=vms)
        yield GaugeMetricFamily("process_resident_memory_bytes", "Resident memory size in bytes, summed over "
                                "the parent and its workers (shared pages counted in each).", value=rss)
        yield GaugeMetricFamily("process_start_time_seconds", "Start time of the exporter (its parent process) "
                                "since unix epoch in seconds.", value=_boot_time() + parent[19] / _TICKS)
        yield GaugeMetricFamily("process_open_fds", "Number of open file descriptors, summed over the parent "
                                "and its workers.", value=fds)
        yield GaugeMetricFamily("process_max_fds", "Maximum number of open file descriptors of each process.",
                                value=resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        info = GaugeMetricFamily("probe_exporter_worker_info", "The worker processes running now (--web.workers).",
                                 labels=["worker", "pid"])
        for index, pid in sorted(workers.items()):
            info.add_metric([str(index), str(pid)], 1)
        yield info
        yield CounterMetricFamily("probe_exporter_worker_restarts", "Workers that died and were replaced.",
                                  value=self._block.restarts)


def _stat(pid: int) -> list[int]:
    """Fields of /proc/<pid>/stat after the command name, as ints (state is field 0, left at 0)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return [0, *(int(field) for field in fields[1:])]


def _open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


_boot: list[float] = []


def _boot_time() -> float:
    if not _boot:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                _boot.append(float(line.split()[1]))
                break
        else:
            _boot.append(time.time() - time.monotonic())
    return _boot[0]

"""The worker set's shared state: created by the parent before the fork, joined by each worker.

    cluster = Cluster.create(workers)            # parent, before forking
    run_workers(workers, serve_worker, cluster)  # parent: cluster gets the workers' starts and exits
    cluster.enter_worker(index)                  # worker, first thing after the fork
    cluster.attach(exporter)                     # worker, once its Exporter exists
    cluster.close()                              # parent, at exit: removes the private directory
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import logging
import os
import shutil
import signal
import socket
import tempfile

import uvicorn

from probe_exporter import logs
from probe_exporter.exporter import Exporter
from probe_exporter.workers import metrics
from probe_exporter.workers.history import serve_history
from probe_exporter.workers.peers import Peers
from probe_exporter.workers.reload import Reloads
from probe_exporter.workers.shared import SharedBlock
from probe_exporter.workers.slots import SharedSlots
from probe_exporter.workers.supervisor import WorkerHooks


class Cluster(WorkerHooks):
    def __init__(self, workers: int, directory: str) -> None:
        self.workers = workers
        self.directory = directory  # private (0700): metric files, sockets, the slot lock
        self.block = SharedBlock(workers, os.path.join(directory, "slots.lock"))
        self.index = -1  # this worker's index; -1 in the parent
        self.peers: Peers | None = None
        self.reloads: Reloads | None = None
        self._owner = os.getpid()

    @classmethod
    def create(cls, workers: int) -> Cluster:
        return cls(workers, tempfile.mkdtemp(prefix="probe_exporter-"))

    def close(self) -> None:
        if os.getpid() == self._owner:
            shutil.rmtree(self.directory, ignore_errors=True)

    # --- in the parent ----------------------------------------------------------------------------------

    def started(self, index: int, pid: int) -> None:
        self.block.set_pid(index, pid)

    def exited(self, index: int, pid: int, replaced: bool) -> None:
        self.block.forget_worker(index)
        metrics.forget_process(self.directory, pid)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path(index))
        if replaced:
            self.block.count_restart()

    # --- in a worker ------------------------------------------------------------------------------------

    def socket_path(self, index: int) -> str:
        return os.path.join(self.directory, f"worker-{index}.sock")

    def enter_worker(self, index: int) -> None:
        """Right after the fork, before the worker creates any metric."""
        self.index = index
        logs.process_fields["worker"] = index
        # SIGHUP would end the worker until the app's handler is in place (the parent sends it one to reload).
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        metrics.enable_multiprocess(self.directory)
        _seed_probe_ids(index, self.workers)
        # Metrics created at import (before the fork) must write to this worker's files too.
        from probe_exporter.probers.snmp import stats

        stats.STATS.__init__()  # type: ignore[misc]  # same object: modules hold references to it

    def attach(self, exporter: Exporter) -> None:
        exporter.metrics.event_loop_lag = metrics.per_worker(exporter.metrics.registry, exporter.metrics.event_loop_lag,
                                                             self.index)
        exporter.metrics.registry = metrics.ExporterWideRegistry(exporter.metrics.registry, self.directory,
                                                                 self.block)
        exporter.peers = self.peers = Peers(self.index, self.socket_path, self.block.pids)
        serve_history(self.peers, exporter)
        exporter.limiter.shared = SharedSlots(self.block, self.index)
        self.reloads = Reloads(exporter, self.peers, self.block, os.path.join(self.directory, "reload.lock"))
        self.reloads.catch_up()
        logs.log(logging.DEBUG, "Worker joined the cluster", directory=self.directory)

    def run(self, server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        """uvicorn's Server.run, with this worker's peer socket served on the same event loop."""
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(self._serve(server, sockets))

    async def _serve(self, server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        assert self.peers is not None and self.reloads is not None, "attach() first"
        await self.peers.start()
        following = asyncio.create_task(self.reloads.follow())
        try:
            await server.serve(sockets=sockets)
        finally:
            following.cancel()
            await self.peers.stop()


# Where the probe id sequence lives (module-level `_probe_ids`, an itertools.count).
PROBE_ID_MODULES = ("probe_exporter.pipeline", "probe_exporter.runner")


def _seed_probe_ids(index: int, workers: int) -> None:
    """Probe ids unique over the workers (worker i: i, i+N, i+2N, ...), so /logs?id= names one probe."""
    for name in PROBE_ID_MODULES:
        with contextlib.suppress(ImportError):
            module = importlib.import_module(name)
            if hasattr(module, "_probe_ids"):
                setattr(module, "_probe_ids", itertools.count(index, workers))  # noqa: B010
                return
    raise RuntimeError(f"no probe id sequence in {', '.join(PROBE_ID_MODULES)}")

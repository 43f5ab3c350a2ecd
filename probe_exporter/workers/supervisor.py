"""The parent of `--web.workers` processes: forks them, relays signals, reaps them."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable

from probe_exporter import logs

# The parent binds one SO_REUSEPORT listening socket per worker and address and forks the workers;
# the kernel spreads new connections over the sockets by address hash (a scraper's keep-alive
# connection stays with one worker). The parent keeps every socket open, so the connections the kernel
# queues on a dead worker's socket wait there for its replacement instead of being refused. It hands
# SIGHUP to its oldest worker, which reloads every worker (workers/reload.py), and SIGTERM/SIGINT as
# SIGTERM to every worker, which finish their requests in flight (each within its probe's deadline)
# and exit. A worker that dies on its own is replaced by a new one with the same index (after a pause
# if it keeps dying at startup).

PR_SET_PDEATHSIG = 1  # linux/prctl.h
RELAYED_SIGNALS = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
# Longer than any probe's deadline (at most the 120 s blackbox_exporter assumes without a scrape
# timeout header), so that a graceful stop lets every probe in flight finish.
WORKER_STOP_SECONDS = 125.0
# A worker that dies sooner than this after its start is replaced only after a pause, doubled each
# time up to the maximum, so a worker that cannot start does not make the parent fork in a loop.
STABLE_SECONDS = 5.0
FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 30.0


class WorkerHooks:
    """What the parent does around a worker's life (the shared state's bookkeeping)."""

    def started(self, index: int, pid: int) -> None:
        pass

    def exited(self, index: int, pid: int, replaced: bool) -> None:
        pass


class _Supervisor:
    def __init__(self, serve_worker: Callable[[int], None], hooks: WorkerHooks) -> None:
        self.serve_worker = serve_worker
        self.hooks = hooks
        self.parent = os.getpid()
        self.workers: dict[int, int] = {}  # pid -> index
        self.started_at: dict[int, float] = {}  # index -> monotonic start
        self.pause: dict[int, float] = {}  # index -> the pause before its next replacement
        self.due: dict[int, float] = {}  # index -> when to start its replacement
        self.stopping_since: float | None = None

    def start(self, index: int) -> int:
        pid = os.fork()
        if pid == 0:
            _worker_main(index, self.parent, self.serve_worker)  # never returns
        self.workers[pid] = index
        self.started_at[index] = time.monotonic()
        self.hooks.started(index, pid)
        return pid

    def send(self, number: signal.Signals) -> None:
        _send(list(self.workers), number)

    def oldest(self) -> int:
        """The pid of the worker running longest: surely past its startup, so it has its handlers."""
        return min(self.workers, key=lambda pid: self.started_at[self.workers[pid]])

    def stop(self, reason: str) -> None:
        if self.stopping_since is None:
            logs.log(logging.INFO, reason)
            self.stopping_since = time.monotonic()
            self.due.clear()
        self.send(signal.SIGTERM)

    def reaped(self, pid: int, index: int, status: int) -> None:
        replace = self.stopping_since is None
        self.hooks.exited(index, pid, replace)
        if not replace:
            return
        now = time.monotonic()
        if now - self.started_at[index] >= STABLE_SECONDS:
            self.pause.pop(index, None)
            self.due[index] = now
        else:
            pause = self.pause[index] = min(self.pause.get(index, FIRST_PAUSE_SECONDS / 2) * 2, MAX_PAUSE_SECONDS)
            self.due[index] = now + pause
        logs.log(logging.ERROR, "Worker exited, replacing it", worker=index, pid=pid, status=status,
                 after_seconds=round(self.due[index] - now, 3))

    def start_due(self) -> None:
        now = time.monotonic()
        for index, when in sorted(self.due.items()):
            if when <= now:
                del self.due[index]
                pid = self.start(index)
                logs.log(logging.INFO, "Started a replacement worker", worker=index, pid=pid)

    def timeout(self) -> float:
        if self.stopping_since is not None:
            return max(0.0, self.stopping_since + WORKER_STOP_SECONDS - time.monotonic())
        if self.due:
            return max(0.0, min(self.due.values()) - time.monotonic())
        return 1.0


def run_workers(count: int, serve_worker: Callable[[int], None], hooks: WorkerHooks | None = None) -> int:
    """Fork `count` workers running `serve_worker(index)`, replace those that die and relay signals
    until SIGTERM/SIGINT and the workers are gone."""
    signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED_SIGNALS)  # taken synchronously with sigtimedwait
    supervisor = _Supervisor(serve_worker, hooks or WorkerHooks())
    for index in range(count):
        supervisor.start(index)
    logs.log(logging.INFO, "Started workers", workers=count, pids=",".join(map(str, supervisor.workers)))
    while supervisor.workers or supervisor.due:
        info = signal.sigtimedwait(RELAYED_SIGNALS, supervisor.timeout())
        number = info.si_signo if info is not None else None
        if number in (signal.SIGTERM, signal.SIGINT):
            supervisor.stop(f"Received signal {signal.Signals(number).name}, stopping workers")
        elif number == signal.SIGHUP and supervisor.stopping_since is None:
            if supervisor.workers:
                _send([supervisor.oldest()], signal.SIGHUP)
            else:
                logs.log(logging.WARNING, "Received SIGHUP with no worker running, not reloading")
        # A SIGCHLD can merge with another, and a stop can time out: look every time.
        for pid, index, status in _reap(supervisor.workers):
            supervisor.reaped(pid, index, status)
        stopping = supervisor.stopping_since
        if stopping is not None and time.monotonic() >= stopping + WORKER_STOP_SECONDS:
            supervisor.send(signal.SIGKILL)
        if stopping is None:
            supervisor.start_due()
    return 0


def _worker_main(index: int, parent: int, serve_worker: Callable[[int], None]) -> None:
    code = 0
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, RELAYED_SIGNALS)
        _stop_with_parent(parent)
        serve_worker(index)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # a worker must never return into the parent's loop
        logs.logger.exception("worker failed", extra={"fields": {"worker": index}})
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


def _stop_with_parent(parent: int) -> None:
    """Linux: SIGTERM this worker when the parent dies, even by SIGKILL, so no worker outlives it
    holding the port."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def _send(pids: list[int], number: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)


def _reap(workers: dict[int, int]) -> list[tuple[int, int, int]]:
    reaped = []
    while workers:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            workers.clear()
            break
        if pid == 0:
            break
        if pid in workers:
            reaped.append((pid, workers.pop(pid), os.waitstatus_to_exitcode(status)))
    return reaped

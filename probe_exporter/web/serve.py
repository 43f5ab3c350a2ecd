"""The uvicorn server for an app (TLS from the web config, our logging, keep-alive for scrapers), and the
supervisor of `--web.workers` processes."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import ssl
import time
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from probe_exporter import logs
from probe_exporter.web.listener import ConnectionGuard, ListenerLimits, bounded_protocol
from probe_exporter.web.security import WebConfigSource, client_sans_allowed


def make_server(app: FastAPI) -> uvicorn.Server:
    """A server for `create_app(...)`; HTTPS when the app's web config has a tls_server_config. Every
    connection is held to the listener limits of the exporter's settings (probe_exporter.web.listener)."""
    settings = app.state.exporter.settings
    limits = ListenerLimits(read_header_timeout=settings.web_read_header_timeout,
                            max_connections=settings.web_max_connections)
    source: WebConfigSource | None = app.state.web_config
    context = source.ssl_context() if source is not None else None
    factory: Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext] | None = None
    base: type[asyncio.Protocol] = AutoHTTPProtocol
    if context is not None and source is not None:
        def factory(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
            return context

        base = _san_checking_protocol(source)
    # ws="none": no route speaks WebSocket, and uvicorn would import wsproto for it (~1 MiB).
    # timeout_keep_alive: uvicorn closes idle keep-alive connections itself.
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_keep_alive=limits.idle_timeout,
                            backlog=2048, ssl_context_factory=factory, ws="none",
                            http=bounded_protocol(ConnectionGuard(limits), base))
    return uvicorn.Server(config)


def _san_checking_protocol(source: WebConfigSource) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, closing TLS connections whose client certificate has no allowed SAN
    (asyncio calls connection_made after the handshake, so the verified certificate is there)."""
    base: type = AutoHTTPProtocol

    class ClientSANCheckingProtocol(base):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            allowed = source.config.tls_server_config.client_allowed_sans
            if allowed is None:
                return
            if not client_sans_allowed(transport.get_extra_info("peercert"), allowed):
                logs.log(logging.INFO, "Client certificate has no allowed SAN, closing the connection",
                         peer=str(transport.get_extra_info("peername")))
                transport.close()

    return ClientSANCheckingProtocol


# --- `--web.workers N`: pre-forked worker processes ------------------------------------------------
#
# The parent loads the config, binds one SO_REUSEPORT listening socket per worker and address, and
# forks N workers that each run the whole exporter (own event loop, config, /metrics, history,
# concurrency limits) on their own sockets: the kernel spreads new connections over them by address
# hash (a scraper's keep-alive connection stays with one worker). The parent only relays signals:
# SIGHUP to every worker, SIGTERM/SIGINT as SIGTERM to every worker, and a worker's successful
# `/-/reload` (which it reports with SIGUSR1) as SIGHUP to the others. When a worker dies on its own,
# the parent stops the rest and exits 1, so that the service manager restarts the whole set.

PR_SET_PDEATHSIG = 1  # linux/prctl.h
RELAYED_SIGNALS = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGCHLD}
WORKER_STOP_SECONDS = 30.0


def notify_parent_of_reload() -> None:
    """Called in a worker after `/-/reload` succeeded: the parent reloads the other workers."""
    os.kill(os.getppid(), signal.SIGUSR1)


def run_workers(count: int, serve_worker: Callable[[int], None],
                after_fork: Callable[[], object] = lambda: None) -> int:
    """Fork `count` workers running `serve_worker(index)`, call `after_fork` in the parent (to close
    the listening sockets it handed over) and relay signals until the workers are gone."""
    signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED_SIGNALS)  # taken synchronously with sigwaitinfo
    workers: dict[int, int] = {}  # pid -> index
    parent = os.getpid()
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            _worker_main(index, parent, serve_worker)  # never returns
        workers[pid] = index
    after_fork()
    logs.log(logging.INFO, "Started workers", workers=count, pids=",".join(map(str, workers)))
    exit_code = 0
    stopping_since: float | None = None
    while workers:
        timeout = 1.0 if stopping_since is None else max(0.0, stopping_since + WORKER_STOP_SECONDS - time.monotonic())
        info = signal.sigtimedwait(RELAYED_SIGNALS, timeout)
        if info is None:
            if stopping_since is not None and time.monotonic() >= stopping_since + WORKER_STOP_SECONDS:
                _send(workers, signal.SIGKILL)
            _reap(workers)  # a SIGCHLD can merge with another; look anyway
            continue
        number = info.si_signo
        if number == signal.SIGCHLD:
            for pid, index, status in _reap(workers):
                if stopping_since is None:
                    logs.log(logging.ERROR, "Worker exited, stopping the others", worker=index, pid=pid,
                             status=status)
                    exit_code = 1
                    stopping_since = time.monotonic()
                    _send(workers, signal.SIGTERM)
        elif number in (signal.SIGTERM, signal.SIGINT):
            if stopping_since is None:
                logs.log(logging.INFO, "Received signal, stopping workers", signal=signal.Signals(number).name)
                stopping_since = time.monotonic()
            _send(workers, signal.SIGTERM)
        elif number == signal.SIGHUP:
            _send(workers, signal.SIGHUP)
        elif number == signal.SIGUSR1 and stopping_since is None:
            _send({pid: index for pid, index in workers.items() if pid != info.si_pid}, signal.SIGHUP)
    return exit_code


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


def _send(workers: dict[int, int], number: signal.Signals) -> None:
    for pid in workers:
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

"""Command line: `probe-exporter [flags]` serves; `probe-exporter probe ...` runs one probe and exits;
`probe-exporter healthcheck [flags]` checks a running exporter (probe_exporter.healthcheck)."""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import gc
import logging
import os
import platform
import socket
import sys
from collections.abc import Sequence

from probe_exporter import __version__, logs
from probe_exporter.config import Config, ConfigError, default_config_patterns
from probe_exporter.settings import PROBE, SERVE, Settings, add_flags, from_args, parse_listen_address

# Python's default is 700 container allocations; one probe makes thousands, so gen0 ran several times per probe.
# The count is of live young objects: 20 SNMP scrapes in flight hold tens of thousands, and at 10,000
# a worker spent 5-11% more CPU on them (bench/snmp/bench_round.py at 20 rounds at once, three runs).
GC_GEN0_THRESHOLD = 50_000


class _ParserListingProbers(argparse.ArgumentParser):
    """--help ends with the probers this install has, plugins included (looked up only for --help)."""

    def format_help(self) -> str:
        from probe_exporter import registry

        return super().format_help() + "\n" + registry.describe() + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = _ParserListingProbers(prog="probe-exporter", description=__doc__)
    add_flags(parser, SERVE)
    parser.add_argument("--version", action="version", version=f"probe_exporter, version {__version__}")
    return parser


def build_probe_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probe-exporter probe",
                                     description="Run one probe, print its metrics, exit 0 on success, "
                                                 "1 on failure, 2 on bad input.")
    add_flags(parser, PROBE)
    parser.add_argument("--module", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--timeout", type=float, default=10.0, help="Probe deadline in seconds (default 10).")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="Extra query parameter, as on /probe (e.g. hostname=..., auth=...).")
    parser.add_argument("--debug", action="store_true", help="Print the debug page (log, metrics, module).")
    return parser


def bind_listener(address: str, reuse_port: bool = False) -> socket.socket:
    """A bound TCP socket for uvicorn. The explicit IPPROTO_TCP matters: accepted connections inherit
    the listener's proto, and asyncio only sets TCP_NODELAY when it is IPPROTO_TCP. Without it every
    keep-alive response (headers and body are two writes) waits ~40 ms for the scraper's delayed ACK.
    With `reuse_port`, several such sockets share the address and the kernel spreads new connections
    over them (one per `--web.workers` worker)."""
    host, port = parse_listen_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): the first socket systemd passes


def systemd_sockets() -> list[socket.socket]:
    """The listening sockets of systemd socket activation (LISTEN_PID, LISTEN_FDS); ValueError if none."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        raise ValueError("no sockets passed by systemd (LISTEN_PID is not this process)")
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    if count < 1:
        raise ValueError("no sockets passed by systemd (LISTEN_FDS is 0)")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):  # not for our children
        os.environ.pop(name, None)
    return [socket.socket(fileno=SD_LISTEN_FDS_START + index) for index in range(count)]


def _socket_address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_worker_listeners(address: str, workers: int) -> list[socket.socket]:
    """One SO_REUSEPORT socket per worker on `address` (port 0: the port the first one got)."""
    first = bind_listener(address, reuse_port=True)
    sockets = [first]
    try:
        sockets += [bind_listener(_socket_address(first), reuse_port=True) for _ in range(workers - 1)]
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["probe"]:
        return _probe_command(args_list[1:])
    if args_list[:1] == ["healthcheck"]:
        from probe_exporter import healthcheck

        return healthcheck.main(args_list[1:])
    from probe_exporter.exporter import load_settings_config

    settings = from_args(build_parser().parse_args(args_list))
    logs.setup_logging(settings.log_level, settings.log_format)
    if settings.log_prober:
        logs.setup_prober_logging(settings.log_prober, settings.log_format)
    settings.config_files = settings.config_files or default_config_patterns()
    try:
        config = load_settings_config(settings)
    except ConfigError as err:
        return _startup_error(settings, str(err))
    if settings.web_config_file:
        from probe_exporter.config.web import load_web_config

        try:
            load_web_config(settings.web_config_file)
        except ConfigError as err:
            message = str(err).replace("error parsing config file", "error parsing web config file", 1)
            return _startup_error(settings, message)
    from probe_exporter.web.prefix import external_url

    try:
        external_url(settings.web_external_url, settings.listen_addresses[0])
    except ValueError as err:
        return _startup_error(settings, f"failed to determine external URL: {err}")
    if settings.config_check:
        _warn_missing_extras(config)
        print(f"Config file{'s' if len(config.files) > 1 else ''} {', '.join(config.files)} OK: "
              f"{len(config.modules)} modules")
        return 0
    return _serve(settings, config)


def _startup_error(settings: Settings, message: str) -> int:
    """Why the server cannot start, exit status 1: a JSON line with --log.format=json (log pipelines read
    every stderr line as JSON), the bare message otherwise (and for --config.check, which is read by people)."""
    if settings.log_format == "json" and not settings.config_check:
        logs.log(logging.ERROR, "Cannot start", err=message)
    else:
        print(message, file=sys.stderr)
    return 1


def _warn_missing_extras(config: Config) -> None:
    """A module whose optional library is missing loads, and fails every probe: --config.check says so."""
    for name, module in config.modules.items():
        missing = module.missing_extras()
        if missing:
            print(f"warning: module {name!r} ({module.prober}) needs an extra that is not installed, its probes "
                  f"will fail: install probe-exporter[{','.join(missing)}]", file=sys.stderr)


def log_startup(config: Config) -> None:
    """What blackbox_exporter logs at start: the version, then each config file with its module count."""
    logs.log(logging.INFO, "Starting probe_exporter", version=__version__, python=platform.python_version())
    counts = collections.Counter(config.module_files.values())
    for path in config.files:
        logs.log(logging.INFO, "Loaded config file", file=path, modules=counts[path])


def _serve(settings: Settings, config: Config) -> int:
    from probe_exporter.exporter import Exporter, load_probers
    from probe_exporter.web.app import create_app
    from probe_exporter.web.serve import make_server
    from probe_exporter.workers import worker_count
    from probe_exporter.workers.cluster import Cluster
    from probe_exporter.workers.supervisor import run_workers

    _raise_open_files_limit()
    log_startup(config)
    load_probers(config)
    workers = worker_count(settings.web_workers)
    # The count resolved (0 is one per CPU): exporter-wide budgets split by it (--probes.body-memory-limit).
    settings = dataclasses.replace(settings, web_workers=workers)
    # sockets_by_worker[i]: what worker i accepts on; one shared socket per address with one worker.
    sockets_by_worker: list[list[socket.socket]] = [[] for _ in range(workers)]
    if settings.web_systemd_socket:
        try:
            activated = systemd_sockets()
        except ValueError as err:
            return _startup_error(settings, f"--web.systemd-socket: {err}")
        for sock in activated:  # one listening socket shared by every worker, each holding its own copy
            for index, sockets in enumerate(sockets_by_worker):
                sockets.append(sock if index == 0 else sock.dup())
            logs.log(logging.INFO, "Listening on systemd socket", address=_socket_address(sock))
    for address in ([] if settings.web_systemd_socket else settings.listen_addresses):
        try:
            bound = bind_worker_listeners(address, workers) if workers > 1 else [bind_listener(address)]
        except OSError as err:
            return _startup_error(settings, f"cannot listen on {address}: {err.strerror}")
        for index, sock in enumerate(bound):
            sockets_by_worker[index].append(sock)
        # The bound address, so `:0` (an ephemeral port) shows the port it got.
        logs.log(logging.INFO, "Listening on", address=_socket_address(bound[0]))
    cluster = Cluster.create(workers) if workers > 1 else None

    def serve_worker(index: int) -> None:
        for other, sockets in enumerate(sockets_by_worker):
            if other != index:  # the kernel must not queue connections for a socket nobody accepts on
                for sock in sockets:
                    sock.close()
        if cluster is not None:
            cluster.enter_worker(index)
        exporter = Exporter(settings, config)
        exporter.metrics.set_worker(index)
        if cluster is not None:
            cluster.attach(exporter)
        app = create_app(exporter)
        if settings.config_enable_auto_reload and index == 0:  # one watcher: its reload reaches every worker
            from probe_exporter import autoreload

            autoreload.install(app, exporter, settings.config_auto_reload_interval)
        if index == 0:
            tls = app.state.web_config is not None and app.state.web_config.ssl_context() is not None
            logs.log(logging.INFO, "TLS is " + ("enabled" if tls else "disabled"),
                     basic_auth=bool(app.state.web_config and app.state.web_config.config.basic_auth_users))
        freeze_startup_heap()
        if cluster is not None:
            cluster.run(make_server(app), sockets_by_worker[index])
        else:
            make_server(app).run(sockets=sockets_by_worker[index])

    if workers == 1:
        serve_worker(0)
        return 0
    # Workers fork from a parent that has imported the app and loaded the config, and has frozen that
    # heap: they share those pages until they write to them.
    freeze_startup_heap()
    assert cluster is not None
    try:  # the parent accepts nothing, but keeps the sockets for the workers that replace dead ones
        return run_workers(workers, serve_worker, cluster)
    finally:
        cluster.close()


def _raise_open_files_limit() -> None:
    """As Go does at startup: a soft limit of 1024 (what systemd gives) would fail probes for lack of
    file descriptors long before the machine is busy."""
    from probe_exporter.limits import default_max_concurrency
    from probe_exporter.openfiles import raise_open_files_limit

    try:
        before, after = raise_open_files_limit()
    except (OSError, ValueError) as err:
        logs.log(logging.WARNING, "Could not read the open-files limit", err=str(err))
        return
    logs.log(logging.INFO, "Open-files limit", soft_limit=after, raised_from=before,
             default_max_concurrency=default_max_concurrency(after))


def freeze_startup_heap() -> None:
    """Move what startup built (imports, config models, routes: some 60 000 objects that live
    as long as the process) out of the cyclic GC's reach, and collect the young generation less often.
    Under probe load a full collection otherwise walks all of it every few hundred probes: measured at
    ~0.1-0.3 ms of CPU per probe (bench/http). Probe garbage is freed by reference counting anyway, and
    frozen objects still are when their count drops (the first config, after a reload); only a reference
    cycle among frozen objects would outlive its use, once."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def _probe_command(argv: list[str]) -> int:
    from probe_exporter.exposition import collect_sorted, render_text
    from probe_exporter.pipeline import ProbeRequest, StandaloneState, Verdict, run

    parser = build_probe_parser()
    from probe_exporter.exporter import load_settings_config

    args = parser.parse_args(argv)
    settings = from_args(args)
    logs.setup_logging(settings.log_level, settings.log_format)
    if settings.log_prober:
        logs.setup_prober_logging(settings.log_prober, settings.log_format)
    try:
        config = load_settings_config(settings)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    params = dict(item.partition("=")[::2] for item in args.param)
    params.update(module=args.module, target=args.target)
    request = ProbeRequest([args.module], args.target, params, endpoint="cli", timeout=args.timeout)
    outcome = asyncio.run(run(StandaloneState(config, settings), request))
    if outcome.verdict is not Verdict.PROBED:
        print(outcome.reason, file=sys.stderr)
        return 2
    if args.debug:
        sys.stdout.write(outcome.debug_text())
    else:
        sys.stdout.write(render_text(collect_sorted([outcome.metrics])).decode())
    return 0 if outcome.success else 1

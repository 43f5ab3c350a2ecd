"""Command line: `probe-exporter [flags]` serves; `probe-exporter probe ...` runs one probe and exits."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import socket
import sys
from collections.abc import Sequence

from probe_exporter import __version__, logs
from probe_exporter.config import Config, ConfigError, default_config_patterns
from probe_exporter.settings import PROBE, SERVE, Settings, add_flags, from_args

# Python's default is 700 container allocations; one probe makes thousands, so gen0 ran several times per probe.
GC_GEN0_THRESHOLD = 10_000


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


def parse_listen_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


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


def bind_worker_listeners(address: str, workers: int) -> list[socket.socket]:
    """One SO_REUSEPORT socket per worker on `address` (port 0: the port the first one got)."""
    first = bind_listener(address, reuse_port=True)
    sockets = [first]
    try:
        host = parse_listen_address(address)[0]
        bound = f"[{host}]:{first.getsockname()[1]}" if ":" in host else f"{host}:{first.getsockname()[1]}"
        sockets += [bind_listener(bound, reuse_port=True) for _ in range(workers - 1)]
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["probe"]:
        return _probe_command(args_list[1:])
    from probe_exporter.exporter import load_settings_config

    settings = from_args(build_parser().parse_args(args_list))
    logs.setup_logging(settings.log_level, settings.log_format)
    settings.config_files = settings.config_files or default_config_patterns()
    try:
        config = load_settings_config(settings)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    if settings.web_config_file:
        from probe_exporter.config.web import load_web_config

        try:
            load_web_config(settings.web_config_file)
        except ConfigError as err:
            print(str(err).replace("error parsing config file", "error parsing web config file", 1), file=sys.stderr)
            return 1
    if settings.config_check:
        print(f"Config file{'s' if len(config.files) > 1 else ''} {', '.join(config.files)} OK: "
              f"{len(config.modules)} modules")
        return 0
    return _serve(settings, config)


def _serve(settings: Settings, config: Config) -> int:
    from probe_exporter import registry
    from probe_exporter.exporter import Exporter
    from probe_exporter.web.app import create_app
    from probe_exporter.web.serve import make_server
    from probe_exporter.workers import worker_count
    from probe_exporter.workers.cluster import Cluster
    from probe_exporter.workers.supervisor import run_workers

    registry.load(config.modules)
    workers = worker_count(settings.web_workers)
    # sockets_by_worker[i]: what worker i accepts on; one shared socket per address with one worker.
    sockets_by_worker: list[list[socket.socket]] = [[] for _ in range(workers)]
    for address in settings.listen_addresses:
        try:
            bound = bind_worker_listeners(address, workers) if workers > 1 else [bind_listener(address)]
        except OSError as err:
            print(f"cannot listen on {address}: {err.strerror}", file=sys.stderr)
            return 1
        for index, sock in enumerate(bound):
            sockets_by_worker[index].append(sock)
        logs.log(logging.INFO, "Listening on", address=address)
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
    from probe_exporter.probers.base import BadRequest
    from probe_exporter.runner import debug_output, run_probe

    parser = build_probe_parser()
    from probe_exporter.exporter import load_settings_config

    args = parser.parse_args(argv)
    settings = from_args(args)
    logs.setup_logging(settings.log_level, settings.log_format)
    try:
        config = load_settings_config(settings)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    module = config.modules.get(args.module)
    if module is None:
        print(f'Unknown module "{args.module}"', file=sys.stderr)
        return 2
    params = dict(item.partition("=")[::2] for item in args.param)
    params.update(module=args.module, target=args.target)
    timeout = module.timeout if 0 < module.timeout < args.timeout else args.timeout
    try:
        outcome = asyncio.run(run_probe(args.module, module, args.target, timeout, params, config, settings=settings))
    except BadRequest as err:
        print(err, file=sys.stderr)
        return 2
    if args.debug:
        sys.stdout.write(debug_output(outcome, module))
    else:
        sys.stdout.write(render_text(collect_sorted([outcome.metrics])).decode())
    return 0 if outcome.success else 1

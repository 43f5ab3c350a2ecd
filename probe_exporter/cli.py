"""Command line: `probe-exporter [flags]` serves; `probe-exporter probe ...` runs one probe and exits."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Sequence

from probe_exporter import __version__, logs
from probe_exporter.config import ConfigError, default_config_patterns, load_config

DEFAULT_LISTEN_ADDRESS = ":10115"


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config.file", dest="config_files", action="append", metavar="PATTERN",
                        help="Module config file or glob; repeatable (default: the shipped modules/*.yml).")
    parser.add_argument("--log.level", dest="log_level", default="info", choices=sorted(logs.LEVELS))
    parser.add_argument("--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probe-exporter", description=__doc__)
    _add_common(parser)
    parser.add_argument("--web.listen-address", dest="listen_addresses", action="append", metavar="ADDR",
                        help=f"Address to listen on; repeatable (default {DEFAULT_LISTEN_ADDRESS}).")
    parser.add_argument("--timeout-offset", dest="timeout_offset", type=float, default=0.5,
                        help="Offset to subtract from the Prometheus scrape timeout, in seconds.")
    parser.add_argument("--config.check", dest="config_check", action="store_true",
                        help="Validate the config files and exit (0 valid, 1 invalid).")
    parser.add_argument("--version", action="version", version=f"probe_exporter, version {__version__}")
    return parser


def build_probe_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probe-exporter probe",
                                     description="Run one probe, print its metrics, exit 0 on success, "
                                                 "1 on failure, 2 on bad input.")
    _add_common(parser)
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


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["probe"]:
        return _probe_command(args_list[1:])
    args = build_parser().parse_args(args_list)
    logs.setup_logging(args.log_level, args.log_format)
    patterns = args.config_files or default_config_patterns()
    try:
        config = load_config(patterns)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    if args.config_check:
        print(f"Config file{'s' if len(config.files) > 1 else ''} {', '.join(config.files)} OK: "
              f"{len(config.modules)} modules")
        return 0
    return _serve(args, patterns, config)


def _serve(args: argparse.Namespace, patterns: list[str], config: object) -> int:
    import uvicorn

    from probe_exporter.exporter import Exporter, Settings
    from probe_exporter.web.app import create_app

    settings = Settings(config_files=patterns, listen_addresses=args.listen_addresses or [DEFAULT_LISTEN_ADDRESS],
                        timeout_offset=args.timeout_offset, log_level=args.log_level, log_format=args.log_format)
    exporter = Exporter(settings, config)  # type: ignore[arg-type]
    sockets = []
    for address in settings.listen_addresses:
        host, port = parse_listen_address(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            print(f"cannot listen on {address}: {err.strerror}", file=sys.stderr)
            return 1
        sockets.append(sock)
        logs.log(logging.INFO, "Listening on", address=address)
    server = uvicorn.Server(uvicorn.Config(create_app(exporter), log_config=None, access_log=False,
                                           timeout_keep_alive=30, backlog=2048))
    server.run(sockets=sockets)
    return 0


def _probe_command(argv: list[str]) -> int:
    from probe_exporter.exposition import collect_sorted, render_text
    from probe_exporter.probers import BadRequest
    from probe_exporter.runner import debug_output, run_probe

    parser = build_probe_parser()
    args = parser.parse_args(argv)
    logs.setup_logging(args.log_level, args.log_format)
    try:
        config = load_config(args.config_files or default_config_patterns())
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
        outcome = asyncio.run(run_probe(args.module, module, args.target, timeout, params, config))
    except BadRequest as err:
        print(err, file=sys.stderr)
        return 2
    if args.debug:
        sys.stdout.write(debug_output(outcome, module))
    else:
        sys.stdout.write(render_text(collect_sorted([outcome.metrics])).decode())
    return 0 if outcome.success else 1

"""Every flag of the exporter, in one place: its default, its help text and its type.

`Settings` is what the running exporter is told; the command line (probe_exporter.cli) is built from
these fields, so a flag's default and help are written once. To add a flag, add a field here with
`flag(...)` metadata and read it from `exporter.settings` where it is used.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from probe_exporter.logs import LEVELS

DEFAULT_LISTEN_ADDRESS = ":10115"

# Which command lines take a flag: the server, and the one-shot `probe` command.
SERVE = "serve"
PROBE = "probe"


@dataclass(frozen=True)
class Flag:
    name: str
    help: str
    commands: tuple[str, ...] = (SERVE,)
    metavar: str | None = None
    choices: Sequence[str] | None = None
    # Parses the text of the flag (int, float, a checked int); None for text and booleans.
    parse: Callable[[str], Any] | None = None
    repeatable: bool = False
    # A `--x`/`--no-x` pair rather than a flag taking no value.
    negatable: bool = False


def flag(name: str, help: str, **options: Any) -> dict[str, Flag]:
    return {"flag": Flag(name, help, **options)}


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def auto_reload_interval(text: str) -> float:
    """blackbox takes whole seconds (`30`); a Go duration (`30s`, `1m`) is accepted too."""
    from probe_exporter.config.types import parse_go_duration  # imported for this flag only

    try:
        seconds = float(int(text))
    except ValueError:
        try:
            seconds = parse_go_duration(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return seconds


def byte_size(text: str) -> int:
    """`256MiB`, `1GB` (KB means KiB, as blackbox's body_size_limit) or a number of bytes; 0 is no limit."""
    from probe_exporter.config.types import parse_base2_bytes  # imported for this flag only

    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    try:
        return parse_base2_bytes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def positive_seconds(text: str) -> float:
    """Whole seconds or a Go duration, as auto_reload_interval reads them, and more than 0."""
    seconds = auto_reload_interval(text)
    if seconds == 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return seconds


def source_address(text: str) -> str:
    """`addr:port` (`[v6]:port`) with an IP address; an empty or 0 port is any free port."""
    import ipaddress

    if not text:  # the default: the system picks
        return text
    host, _, port = text.rpartition(":")
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not IP:PORT (e.g. 192.0.2.1:0 or [2001:db8::1]:)") from None
    if port and not (port.isdigit() and int(port) <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r}: port {port!r} is not a number from 0 to 65535")
    return text


BOTH = (SERVE, PROBE)


@dataclass
class Settings:
    config_files: list[str] = field(default_factory=list, metadata=flag(
        "--config.file", "Module config file or glob; repeatable (default: the shipped modules/*.yml).",
        commands=BOTH, metavar="PATTERN", repeatable=True))
    log_level: str = field(default="info", metadata=flag("--log.level", "Only log messages with the given "
                                                         "severity or above.", commands=BOTH, choices=sorted(LEVELS)))
    log_format: str = field(default="logfmt", metadata=flag(
        "--log.format", "Output format of log messages.", commands=BOTH, choices=("logfmt", "json")))
    log_prober: str = field(default="", metadata=flag(
        "--log.prober", "Log level for probe logs: probe log lines at this level or above go to stderr, "
        "independently of --log.level (default: none, except at --log.level=debug).", commands=BOTH,
        choices=sorted(LEVELS)))
    snmp_wrap_large_counters: bool = field(default=True, metadata=flag(
        "--snmp.wrap-large-counters", "Wrap 64-bit SNMP counters at 2^53 so float64 keeps them exact, "
        "as snmp_exporter does.", commands=BOTH, negatable=True))
    snmp_module_concurrency: int = field(default=1, metadata=flag(
        "--snmp.module-concurrency", "SNMP modules of one request walked at once, as snmp_exporter (default 1); "
        "each has its own session and request IDs, and results merge in module order.", commands=BOTH,
        parse=positive_int))
    snmp_lookup_cache: float = field(default=0.0, metadata=flag(
        "--snmp.lookup-cache", "Keep SNMP lookup walks (ifAlias, ifDescr, ifName columns that only label metrics) "
        "across scrapes for this long, per target, auth and context, e.g. 1h; a reboot (sysUpTime going back) "
        "drops them. A module's lookup_cache overrides it (default 0: off).", commands=BOTH, metavar="DURATION",
        parse=auto_reload_interval))
    snmp_lookup_cache_size: int = field(default=10_000, metadata=flag(
        "--snmp.lookup-cache-size", "(target, auth, context) entries the SNMP lookup cache keeps at most; the "
        "least recently used is dropped first (default 10000).", commands=BOTH, parse=positive_int))
    snmp_source_address: str = field(default="", metadata=flag(
        "--snmp.source-address", "Source address SNMP packets are sent from, as IP:PORT, as snmp_exporter; an empty "
        "or 0 port picks a free one (e.g. 192.0.2.1:0). Default: chosen by the system.", commands=BOTH,
        metavar="IP:PORT", parse=source_address))
    snmp_debug_packets: bool = field(default=False, metadata=flag(
        "--snmp.debug-packets", "Hex-dump every SNMP packet into the probe's debug log (communities and SNMPv3 "
        "HMACs masked), as snmp_exporter; per request: the snmp_debug_packets=true parameter.", commands=BOTH))
    expand_environment_variables: bool = field(default=False, metadata=flag(
        "--config.expand-environment-variables", "Expand ${VAR} in SNMP auth username, password and "
        "priv_password.", commands=BOTH))
    listen_addresses: list[str] = field(default_factory=lambda: [DEFAULT_LISTEN_ADDRESS], metadata=flag(
        "--web.listen-address", f"Address to listen on; repeatable (default {DEFAULT_LISTEN_ADDRESS}).",
        metavar="ADDR", repeatable=True))
    timeout_offset: float = field(default=0.5, metadata=flag(
        "--timeout-offset", "Offset to subtract from the Prometheus scrape timeout, in seconds.", parse=float))
    config_enable_auto_reload: bool = field(default=False, metadata=flag(
        "--config.enable-auto-reload", "Reload the config files every --config.auto-reload-interval when "
        "they changed (an unchanged file is not reloaded)."))
    config_auto_reload_interval: float = field(default=30.0, metadata=flag(
        "--config.auto-reload-interval", "Seconds between auto-reload checks (default 30; a Go duration "
        "such as 1m works too).", metavar="SECONDS", parse=auto_reload_interval))
    config_check: bool = field(default=False, metadata=flag(
        "--config.check", "Validate the config files (and --web.config.file) and exit (0 valid, 1 invalid)."))
    web_external_url: str = field(default="", metadata=flag(
        "--web.external-url", "The URL under which the exporter is reached from outside (a reverse proxy); "
        "its path is the default route prefix. Default: http://<hostname>:<port>/.", metavar="URL"))
    web_route_prefix: str = field(default="", metadata=flag(
        "--web.route-prefix", "Prefix for the internal routes. Defaults to the path of --web.external-url.",
        metavar="PATH"))
    web_systemd_socket: bool = field(default=False, metadata=flag(
        "--web.systemd-socket", "Use systemd socket activation listeners (LISTEN_FDS) instead of "
        "--web.listen-address (Linux only)."))
    web_config_file: str = field(default="", metadata=flag(
        "--web.config.file", "exporter-toolkit web config: TLS, basic_auth_users, response headers, rate_limit. "
        "Applies to every endpoint.", metavar="FILE"))
    history_limit: int = field(default=100, metadata=flag(
        "--history.limit", "Probes kept for the landing page and /logs; failures pushed out are kept as many "
        "again (default 100, 0 disables).", parse=non_negative_int))
    # None: as many as the open-files limit holds (limits.default_max_concurrency).
    max_concurrent_probes: int | None = field(default=None, metadata=flag(
        "--probes.max-concurrency", "Probes running at once over all modules; more wait within their deadline, "
        "and one that cannot start in time gets HTTP 503 (default: as many as the open-files limit holds, "
        "(limit - 64) / 2; 0 unlimited).", parse=non_negative_int))
    body_memory_limit: int = field(default=256 << 20, metadata=flag(
        "--probes.body-memory-limit", "Bytes of HTTP response bodies held for regex/CEL matching at once, over "
        "the whole exporter (each of N workers holds 1/N of it); a probe whose body would pass it fails "
        "(default 256MiB, 0 unlimited).",
        commands=BOTH, metavar="SIZE", parse=byte_size))
    web_workers: int = field(default=0, metadata=flag(
        "--web.workers", "Worker processes serving the listen addresses (default 0: one per CPU this process "
        "may use). They fork from one process that loaded the config, and act as one exporter: /metrics, "
        "history (/logs, landing page), /config and the concurrency limits cover all of them; SIGHUP, "
        "/-/reload and SIGTERM reach all of them, and a worker that dies is replaced.",
        metavar="N", parse=non_negative_int))
    web_read_header_timeout: float = field(default=10.0, metadata=flag(
        "--web.read-header-timeout", "Close a connection whose request head has not arrived in this long, "
        "e.g. 10s (default 10s).", metavar="DURATION", parse=positive_seconds))
    web_max_connections: int = field(default=0, metadata=flag(
        "--web.max-connections", "Open connections at most; one more evicts the longest-waiting half-open or "
        "idle one, or is closed at once (default 0: half the open-files limit).", parse=non_negative_int))


def parse_listen_address(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every address) of --web.listen-address."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def add_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags of `command` on `parser`, with Settings' defaults (a repeatable flag: None when unset,
    so the default is not added to by the user's values)."""
    for setting in dataclasses.fields(Settings):
        spec: Flag | None = setting.metadata.get("flag")
        if spec is None or command not in spec.commands:
            continue
        options: dict[str, Any] = {"dest": setting.name, "help": spec.help}
        if spec.metavar:
            options["metavar"] = spec.metavar
        if spec.choices:
            options["choices"] = list(spec.choices)
        if spec.repeatable:
            options["action"] = "append"
        elif setting.type in ("bool", bool):
            options["action"] = argparse.BooleanOptionalAction if spec.negatable else "store_true"
            options["default"] = setting.default
        else:
            options["default"] = setting.default
            if spec.parse is not None:
                options["type"] = spec.parse
        parser.add_argument(spec.name, **options)


def from_args(args: argparse.Namespace) -> Settings:
    """Settings from parsed flags; a flag the command does not take keeps its default."""
    values = {}
    for setting in dataclasses.fields(Settings):
        value = getattr(args, setting.name, None)
        if value is not None:
            values[setting.name] = value
    return Settings(**values)

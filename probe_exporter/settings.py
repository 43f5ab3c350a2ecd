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
# A Python process usually starts with a soft limit of 1024 file descriptors, and every probe holds
# at least two (the scrape and the probe's own connection): 500 keeps a margin for the listener and logs.
DEFAULT_MAX_CONCURRENT_PROBES = 500

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
    snmp_wrap_large_counters: bool = field(default=True, metadata=flag(
        "--snmp.wrap-large-counters", "Wrap 64-bit SNMP counters at 2^53 so float64 keeps them exact, "
        "as snmp_exporter does.", commands=BOTH, negatable=True))
    expand_environment_variables: bool = field(default=False, metadata=flag(
        "--config.expand-environment-variables", "Expand ${VAR} in SNMP auth username, password and "
        "priv_password.", commands=BOTH))
    listen_addresses: list[str] = field(default_factory=lambda: [DEFAULT_LISTEN_ADDRESS], metadata=flag(
        "--web.listen-address", f"Address to listen on; repeatable (default {DEFAULT_LISTEN_ADDRESS}).",
        metavar="ADDR", repeatable=True))
    timeout_offset: float = field(default=0.5, metadata=flag(
        "--timeout-offset", "Offset to subtract from the Prometheus scrape timeout, in seconds.", parse=float))
    config_check: bool = field(default=False, metadata=flag(
        "--config.check", "Validate the config files (and --web.config.file) and exit (0 valid, 1 invalid)."))
    web_config_file: str = field(default="", metadata=flag(
        "--web.config.file", "exporter-toolkit web config: TLS, basic_auth_users, response headers, rate_limit. "
        "Applies to every endpoint.", metavar="FILE"))
    history_limit: int = field(default=100, metadata=flag(
        "--history.limit", "Probes kept for the landing page and /logs; failures pushed out are kept as many "
        "again (default 100, 0 disables).", parse=non_negative_int))
    max_concurrent_probes: int = field(default=DEFAULT_MAX_CONCURRENT_PROBES, metadata=flag(
        "--probes.max-concurrency", "Probes running at once over all modules; more wait, within their deadline "
        f"(default {DEFAULT_MAX_CONCURRENT_PROBES}, 0 unlimited).", parse=non_negative_int))
    web_workers: int = field(default=0, metadata=flag(
        "--web.workers", "Worker processes serving the listen addresses (default 0: one per CPU this process "
        "may use). They fork from one process that loaded the config, and act as one exporter: /metrics, "
        "history (/logs, landing page), /config and the concurrency limits cover all of them; SIGHUP, "
        "/-/reload and SIGTERM reach all of them, and a worker that dies is replaced.",
        metavar="N", parse=non_negative_int))


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

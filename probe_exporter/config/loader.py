"""Loading config files: globs, several files merged, format detection, errors with file:line.

One file may hold blackbox-style modules (with `prober:`), snmp_exporter modules (no `prober:`,
with `auths:` beside them), and our own `prober: sql` modules.
"""

from __future__ import annotations

import glob
import hashlib
import os
import sysconfig
from dataclasses import dataclass, field
from typing import Any

from probe_exporter import registry
from probe_exporter.config.errors import ConfigError, validate_model
from probe_exporter.config.module import Module, model_for
from probe_exporter.config.yamlfile import LineMap, load_yaml, read_config_bytes

TOP_LEVEL_KEYS = ("modules", "auths")


@dataclass
class Config:
    modules: dict[str, Module] = field(default_factory=dict)
    # snmp_exporter `auths:` (name -> auth model), merged over every file.
    snmp_auths: dict[str, Any] = field(default_factory=dict)
    module_files: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    checksum: str = ""


def expand_patterns(patterns: list[str]) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise ConfigError(f"no file matches {pattern!r}")
        for path in matches:
            if path not in files:
                files.append(path)
    return files


def load_config(patterns: list[str], *, expand_environment_variables: bool = False) -> Config:
    """Every module of the files `patterns` name. With expand_environment_variables, ${VAR} in SNMP
    auth credentials is replaced from the environment (--config.expand-environment-variables)."""
    config = Config()
    digest = hashlib.sha256()
    for path in expand_patterns(patterns):
        raw = read_config_bytes(path)
        _add_to_checksum(digest, path, raw)
        _load_file(config, path, raw, expand_environment_variables)
        config.files.append(path)
    config.checksum = digest.hexdigest()
    return config


def files_checksum(patterns: list[str]) -> str:
    """The checksum load_config would give these files now, without parsing them (auto-reload's
    cheap check for a change). ConfigError if a file cannot be read or a glob matches nothing."""
    digest = hashlib.sha256()
    for path in expand_patterns(patterns):
        _add_to_checksum(digest, path, read_config_bytes(path))
    return digest.hexdigest()


def _add_to_checksum(digest: hashlib._Hash, path: str, raw: bytes) -> None:
    digest.update(path.encode() + b"\0" + raw)


def _load_file(config: Config, path: str, raw: bytes, expand_environment_variables: bool) -> None:
    data, lines = load_yaml(raw, path)
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping", file=path, line=1)
    # --- SNMP: snmp_exporter's pre-0.23 layout (modules at the top level, auth inside) ---
    from probe_exporter.config import snmp as snmp_format

    if snmp_format.is_legacy_file(data):
        data, lines = snmp_format.upgrade_legacy_file(data, lines)
    # --- end SNMP ---
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"field {key} not found", file=path, line=lines.line_of((key,)), key=str(key))
    modules = data.get("modules") or {}
    if not isinstance(modules, dict):
        raise ConfigError("modules must be a mapping", file=path, line=lines.line_of(("modules",)), key="modules")

    snmp_modules = {name: body for name, body in modules.items() if not _has_prober(body)}
    if "auths" in data or snmp_modules:
        from probe_exporter.config import snmp

        snmp_auths, snmp_parsed = snmp.parse_snmp_file(data.get("auths"), snmp_modules, lines, path,
                                                          expand_environment_variables)
        for name, auth in snmp_auths.items():
            config.snmp_auths[name] = auth
        for name, snmp_module in snmp_parsed.items():
            _add_module(config, name, Module(prober="snmp", snmp=snmp_module), path, lines)

    for name, body in modules.items():
        if name in snmp_modules:
            continue
        try:
            model = model_for(body.get("prober") if isinstance(body, dict) else None)
        except registry.ProberUnavailable as err:  # a plugin that is installed but does not import
            raise ConfigError(str(err), file=path, line=lines.line_of(("modules", name, "prober")),
                              key=f"modules.{name}.prober") from None
        # An inline `snmp:` block is parsed on its own: ${VAR} in its auth is expanded before validation.
        snmp_block = body.get("snmp") if isinstance(body, dict) else None
        if snmp_block is not None:
            body = {key: value for key, value in body.items() if key != "snmp"}
        module = validate_model(model, body, lines, path, ("modules", name))
        if snmp_block is not None:
            from probe_exporter.config import snmp

            module.snmp = snmp.parse_snmp_module(name, snmp_block, lines, path,
                                                 expand_environment_variables=expand_environment_variables)
        if module.prober == "sql":  # collector files are relative to this file (probe_exporter.config.sql)
            from probe_exporter.config import sql

            sql.load_module_collectors(module, path, lines, ("modules", name))
        _add_module(config, name, module, path, lines)


def _has_prober(body: Any) -> bool:
    return isinstance(body, dict) and "prober" in body


def _add_module(config: Config, name: str, module: Module, path: str, lines: LineMap) -> None:
    if name in config.modules:
        raise ConfigError(f"module {name!r} is already defined in {config.module_files[name]}",
                          file=path, line=lines.line_of(("modules", name)), key=f"modules.{name}")
    config.modules[name] = module
    config.module_files[name] = path


def default_config_patterns() -> list[str]:
    """The shipped modules: ./modules/*.yml when run from a checkout, else the copy pip installed."""
    local = os.path.join("modules", "*.yml")
    if glob.glob(local):
        return [local]
    return [os.path.join(sysconfig.get_path("data"), "share", "probe-exporter", "modules", "*.yml")]

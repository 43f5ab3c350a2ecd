"""The effective config as YAML for /config and debug output; every secret shows as `<secret>`."""

from __future__ import annotations

from typing import Any

import yaml

from probe_exporter.config.loader import Config
from probe_exporter.config.module import Module


def _omit_empty(value: Any) -> Any:
    """Go's `omitempty`: drop zero values so the page shows what matters, defaults included."""
    if isinstance(value, dict):
        cleaned = {k: _omit_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, False, "", [], {}, 0, "0s")}
    if isinstance(value, list):
        return [_omit_empty(v) for v in value]
    return value


def module_dict(module: Module) -> dict[str, Any]:
    data = module.model_dump(mode="json", exclude={"snmp"})
    # Only the prober's own block is meaningful; blackbox shows the defaults of the others too,
    # but they only add noise.
    keep = {"prober", "timeout", "max_concurrency", "allowed_targets", module.prober}
    data = {k: v for k, v in data.items() if k in keep}
    if module.prober == "snmp" and module.snmp is not None:
        data["snmp"] = module.snmp.model_dump(mode="json") if hasattr(module.snmp, "model_dump") else module.snmp
    cleaned: dict[str, Any] = _omit_empty(data)
    cleaned["prober"] = module.prober
    return cleaned


def module_as_yaml(module: Module) -> str:
    text: str = yaml.safe_dump(module_dict(module), sort_keys=False, default_flow_style=False, allow_unicode=True)
    return text


def config_as_yaml(config: Config) -> str:
    data: dict[str, Any] = {"modules": {name: module_dict(config.modules[name]) for name in sorted(config.modules)}}
    if config.snmp_auths:
        data["auths"] = {name: (auth.model_dump(mode="json") if hasattr(auth, "model_dump") else auth)
                         for name, auth in sorted(config.snmp_auths.items())}
    text: str = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, indent=4)
    return text

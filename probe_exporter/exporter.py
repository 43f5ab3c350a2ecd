"""The running exporter: its flags, the loaded config, and atomic reloads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from dataclasses import dataclass, field

from probe_exporter import logs, registry
from probe_exporter.config import Config, ConfigError, load_config
from probe_exporter.history import ProbeHistory
from probe_exporter.limits import ProbeLimiter
from probe_exporter.selfmetrics import SelfMetrics

# A Python process usually starts with a soft limit of 1024 file descriptors, and every probe holds
# at least two (the scrape and the probe's own connection): 500 keeps a margin for the listener and logs.
DEFAULT_MAX_CONCURRENT_PROBES = 500


@dataclass
class Settings:
    config_files: list[str]
    listen_addresses: list[str] = field(default_factory=lambda: [":10115"])
    timeout_offset: float = 0.5
    log_level: str = "info"
    log_format: str = "logfmt"
    # Probes kept for the landing page and /logs (failures pushed out are kept as many again); 0: none.
    history_limit: int = 100
    # Probes running at once over all modules; 0: unlimited. See probe_exporter.limits.
    max_concurrent_probes: int = DEFAULT_MAX_CONCURRENT_PROBES
    # exporter-toolkit web config (TLS, basic auth, headers); "" serves plain HTTP without auth.
    web_config_file: str = ""


class Exporter:
    def __init__(self, settings: Settings, config: Config | None = None) -> None:
        self.settings = settings
        self.metrics = SelfMetrics()
        self.history = ProbeHistory(settings.history_limit)
        self.limiter = ProbeLimiter(settings.max_concurrent_probes, self.metrics)
        self.metrics.max_concurrent.set(settings.max_concurrent_probes)
        self._reload_lock = asyncio.Lock()
        self.config: Config = config if config is not None else load_config(settings.config_files)
        self._loaded(self.config)

    def _loaded(self, config: Config) -> None:
        self.metrics.reload_success.set(1)
        self.metrics.reload_timestamp.set(time.time())
        self.metrics.modules_loaded.clear()
        for prober, count in Tally(m.prober for m in config.modules.values()).items():
            self.metrics.modules_loaded.labels(prober).set(count)

    async def reload(self) -> None:
        """Load the files again; on any error keep serving the old config and raise ConfigError."""
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(_load_config_and_probers, self.settings.config_files)
            except ConfigError as err:
                self.metrics.reload_success.set(0)
                logs.log(logging.ERROR, "Error reloading config", err=str(err))
                raise
            if config.checksum == self.config.checksum:
                logs.log(logging.INFO, "Config unchanged, not reloaded")
                self.metrics.reload_success.set(1)
                return
            self.config = config
            self._loaded(config)
            logs.log(logging.INFO, "Reloaded config", files=",".join(config.files), modules=len(config.modules))


def _load_config_and_probers(patterns: list[str]) -> Config:
    """Off the event loop: a reload may bring the first module of a prober kind (see registry.load)."""
    config = load_config(patterns)
    registry.load(config.modules)
    return config

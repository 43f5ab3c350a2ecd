"""The running exporter: its flags, the loaded config, and atomic reloads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from probe_exporter import logs, pipeline, registry
from probe_exporter.config import Config, ConfigError, default_config_patterns, load_config
from probe_exporter.history import ProbeHistory
from probe_exporter.limits import ProbeLimiter, default_max_concurrency
from probe_exporter.openfiles import open_files_limit
from probe_exporter.probers import resolver
from probe_exporter.selfmetrics import SelfMetrics
from probe_exporter.settings import Settings

if TYPE_CHECKING:
    from probe_exporter.workers.peers import Peers


class Exporter:
    def __init__(self, settings: Settings, config: Config | None = None) -> None:
        self.settings = settings
        self.metrics = SelfMetrics()
        self.history = ProbeHistory(settings.history_limit)
        max_concurrent = settings.max_concurrent_probes
        if max_concurrent is None:
            max_concurrent = default_max_concurrency(open_files_limit())
        self.limiter = ProbeLimiter(max_concurrent, self.metrics)
        self.metrics.max_concurrent.set(max_concurrent)
        self._reload_lock = asyncio.Lock()
        # The sibling workers (--web.workers), for the history of all of them; None in one process.
        self.peers: Peers | None = None
        # --web.workers: what reload() does instead, to switch every worker or none (workers/reload.py).
        self.reload_everywhere: Callable[[], Awaitable[None]] | None = None
        self.config: Config = config if config is not None else load_settings_config(settings)
        self._loaded(self.config)


    async def probe(self, request: pipeline.ProbeRequest) -> pipeline.ProbeOutcome:
        """One probe request through the pipeline (deadline, target policy, limits, prober,
        self-metrics, history)."""
        return await pipeline.run(self, request)

    def _loaded(self, config: Config) -> None:
        self.metrics.reload_success.set(1)
        self.metrics.reload_timestamp.set(time.time())
        self.metrics.modules_loaded.clear()
        for prober, count in Tally(m.prober for m in config.modules.values()).items():
            self.metrics.modules_loaded.labels(prober).set(count)

    async def reload(self) -> None:
        """Load the files again; on any error keep serving the old config and raise ConfigError."""
        if self.reload_everywhere is not None:
            await self.reload_everywhere()
            return
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(load_config_and_probers, self.settings)
            except ConfigError as err:
                self.metrics.reload_success.set(0)
                logs.log(logging.ERROR, "Error reloading config", err=str(err))
                raise
            self.switch_to(config)

    def switch_to(self, config: Config) -> None:
        """Serve `config` (a loaded, valid one) from now on."""
        if config.checksum == self.config.checksum:
            logs.log(logging.INFO, "Config unchanged, not reloaded")
            self.metrics.reload_success.set(1)
            return
        self.config = config
        self._loaded(config)
        logs.log(logging.INFO, "Reloaded config", files=",".join(config.files), modules=len(config.modules))


def load_settings_config(settings: Settings) -> Config:
    """The config the flags name (the shipped modules when --config.file is not given)."""
    return load_config(settings.config_files or default_config_patterns(),
                       expand_environment_variables=settings.expand_environment_variables)


def load_probers(config: Config) -> None:
    """Import what the config's modules need now (at startup, and on reload off the event loop), not
    inside a first probe: the probers and their libraries (registry.load), and dnspython for a
    module with its own resolver (dns_server)."""
    for name, module in config.modules.items():
        missing = module.missing_extras()
        if missing:
            logs.log(logging.WARNING, "Module needs an optional extra that is not installed; its probes will fail",
                     module=name, prober=module.prober, install=f"probe-exporter[{','.join(missing)}]")
    registry.load(config.modules)
    blocks = (module.prober_config() for module in config.modules.values())
    if any(getattr(block, "dns_server", None) for block in blocks):
        resolver.preload()


def load_config_and_probers(settings: Settings) -> Config:
    """Off the event loop: a reload may bring the first module of a prober kind (see load_probers)."""
    config = load_settings_config(settings)
    load_probers(config)
    return config

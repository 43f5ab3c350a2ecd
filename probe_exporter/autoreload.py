"""`--config.enable-auto-reload` (blackbox_exporter 0.28): look at the config files every
`--config.auto-reload-interval` and reload them when they changed.

The check reads and hashes the files without parsing them, so an unchanged file costs a read every
interval, not a parse (the generated snmp.yml takes seconds to parse). A changed file goes through
the same reload as SIGHUP and `/-/reload`: a bad one is logged, counted in
probe_exporter_config_last_reload_successful, and the old config keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from probe_exporter import logs
from probe_exporter.config import ConfigError
from probe_exporter.config.loader import files_checksum

if TYPE_CHECKING:
    from probe_exporter.exporter import Exporter


async def changed(exporter: Exporter) -> bool:
    """Whether the files differ from the loaded config (True when they cannot be read: the reload
    then reports why, as blackbox's does)."""
    try:
        checksum = await asyncio.to_thread(files_checksum, exporter.settings.config_files)
    except ConfigError:
        return True
    return checksum != exporter.config.checksum


async def watch(exporter: Exporter, interval: float) -> None:
    """Reload every `interval` seconds when the files changed; runs until cancelled."""
    while True:
        await asyncio.sleep(interval)
        if not await changed(exporter):
            logs.log(logging.DEBUG, "Configuration checksum check passed. No changes detected.")
            continue
        logs.log(logging.INFO, "Configuration file change detected, reloading the configuration.")
        with contextlib.suppress(ConfigError):  # logged by reload; the old config keeps serving
            await exporter.reload()


def install(app: Any, exporter: Exporter, interval: float) -> None:
    """Run `watch` for as long as the app runs (inside its lifespan). An interval of 0 never fires,
    as Go's time.Tick(0)."""
    if interval <= 0:
        logs.log(logging.WARNING, "Auto-reload is enabled with an interval of 0: it never runs")
        return
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with inner(application) as state:
            task = asyncio.create_task(watch(exporter, interval))
            try:
                yield state
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app.router.lifespan_context = lifespan
    logs.log(logging.INFO, "Config auto-reload enabled", interval_seconds=interval)

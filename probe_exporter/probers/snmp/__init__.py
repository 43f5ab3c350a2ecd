"""The SNMP prober: snmp_exporter's snmp.yml modules on pysnmp.

`probe_snmp` serves `/probe?module=<snmp module>` (blackbox style: a failing agent is
probe_success 0); `probe_snmp_modules` serves several modules in one /probe request; the
`/snmp` endpoint (web/snmp.py) keeps snmp_exporter's own semantics.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from probe_exporter.config.snmp import SnmpModule
from probe_exporter.probers.base import ProbeContext, Prober

if TYPE_CHECKING:
    from probe_exporter.config.module import Module

# Time kept back from the runner's deadline, so a timeout is ours (with a reason in the log and
# the other modules' samples kept) rather than the runner's cancellation.
DEADLINE_MARGIN = 0.05

MODULE_SUCCESS = "probe_snmp_module_success"
MODULE_SUCCESS_HELP = "Whether the SNMP module was scraped successfully (1) or failed (0)."


def preload(module: Module) -> None:
    """pysnmp and the scrape path, imported by the first probe otherwise (see registry.load)."""
    import probe_exporter.probers.snmp.scrape  # noqa: F401


async def probe_snmp(ctx: ProbeContext) -> bool:
    # /probe with several modules (web/snmp.py) passes them comma-joined in the `module` parameter.
    requested = ctx.params.get("module", "")
    names = requested.split(",") if "," in requested else [ctx.module_name]
    return await probe_snmp_modules(ctx, names)


async def probe_snmp_modules(ctx: ProbeContext, module_names: list[str]) -> bool:
    """Every named module against ctx.target; samples of the modules that succeeded are kept."""
    metrics, log = ctx.metrics, ctx.log
    from probe_exporter.probers.base import BadRequest
    from probe_exporter.probers.snmp.scrape import scrape

    config = ctx.config
    modules = []
    for name in module_names:
        module = ctx.module if name == ctx.module_name else (
            config.modules.get(name) if config is not None else None)
        if module is None or module.prober != "snmp":
            raise BadRequest(f'Unknown module "{name}"')
        modules.append((name, module))
    deadline = asyncio.get_running_loop().time() + max(ctx.timeout - DEADLINE_MARGIN, 0.0)
    result = await scrape(ctx.target, modules, config, ctx.params, deadline, log,
                          wrap_counters=ctx.settings.snmp_wrap_large_counters,
                          module_concurrency=ctx.settings.snmp_module_concurrency, settings=ctx.settings)
    for family in result.all_families():
        metrics.add_family(family)
    success = metrics.gauge_vec(MODULE_SUCCESS, MODULE_SUCCESS_HELP, ["module"])
    for module_result in result.modules:
        success.labels(module_result.name).set(1 if module_result.success else 0)
    return result.success


async def shutdown() -> None:
    from probe_exporter.probers.snmp.engine import close_engine

    await close_engine()


PROBER = Prober(name="snmp", probe=probe_snmp, config_model=SnmpModule, preload=preload, shutdown=shutdown)

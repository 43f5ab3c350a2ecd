"""Scraping one target with one or more SNMP modules; shared by /probe and /snmp.

Modules run one after another on the same resolved address (snmp_exporter's default module
concurrency of 1; --snmp.module-concurrency walks several at once). Each module renders into its own
families first and is merged only if it succeeded, so /probe can keep the modules that worked.
"""

from __future__ import annotations

import asyncio
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from probe_exporter.config import Config, Module
from probe_exporter.config.snmp import DEFAULT_AUTH, SnmpAuth, SnmpModule
from probe_exporter.logs import ProbeLog
from probe_exporter.modulecache import CacheKey
from probe_exporter.probers.base import BadRequest
from probe_exporter.probers.snmp import lookupcache, stats, walk
from probe_exporter.probers.snmp.engine import Exchange, Session, SnmpError, get_engine
from probe_exporter.probers.snmp.plan import ModulePlan, compile_module
from probe_exporter.probers.snmp.progressive import ProgressiveRender
from probe_exporter.probers.snmp.render import Families, render_module_sliced
from probe_exporter.probers.snmp.stream import StreamTransport
from probe_exporter.probers.snmp.target import parse_target, resolve, source_of
from probe_exporter.settings import Settings

# Varbinds one module may return before the scrape is stopped (memory bound for a hostile agent).
MAX_VARBINDS = 200_000
_SELF_METRICS = (
    ("snmp_scrape_walk_duration_seconds", "Time SNMP walk/bulkwalk took."),
    ("snmp_scrape_packets_sent", "Packets sent for get, bulkget, and walk; including retries."),
    ("snmp_scrape_packets_retried", "Packets retried for get, bulkget, and walk."),
    ("snmp_scrape_pdus_returned", "PDUs returned from get, bulkget, and walk."),
    ("snmp_scrape_duration_seconds", "Total SNMP time scrape took (walk and processing)."),
)


@dataclass
class ModuleResult:
    name: str
    success: bool = False
    error: str = ""
    exchange: Exchange = field(default_factory=Exchange)
    walk_seconds: float = 0.0
    duration: float = 0.0


# Off: render every module after its walk, as before progressive.py (for tests and comparisons).
PROGRESSIVE = True


@dataclass
class ScrapeResult:
    families: Families
    modules: list[ModuleResult]

    @property
    def success(self) -> bool:
        return all(m.success for m in self.modules)

    def all_families(self) -> list[Metric]:
        """What a response shows: the modules' samples, then the snmp_scrape_* gauges that have series."""
        return [*self.families.rendered.families.values(), *(f for f in self.self_metric_families() if f.samples)]

    def self_metric_families(self) -> list[Metric]:
        """The five snmp_scrape_* gauges, one series per successful module (HEAD's `module` label)."""
        out: list[Metric] = []
        for name, help_text in _SELF_METRICS:
            family = Metric(name, help_text, "gauge")
            for result in self.modules:
                if not result.success:
                    continue
                value = {"snmp_scrape_walk_duration_seconds": result.walk_seconds,
                         "snmp_scrape_packets_sent": result.exchange.packets_sent,
                         "snmp_scrape_packets_retried": result.exchange.packets_retried,
                         "snmp_scrape_pdus_returned": result.exchange.pdus_returned,
                         "snmp_scrape_duration_seconds": result.duration}[name]
                family.samples.append(Sample(name, {"module": result.name}, float(value)))
            out.append(family)
        return out


def snmp_module(module: Module) -> SnmpModule:
    if not isinstance(module.snmp, SnmpModule):
        raise BadRequest("module has no SNMP configuration")
    return module.snmp


SNMP_PLAN = CacheKey["ModulePlan"]("snmp_plan")


def plan_of(module: Module) -> ModulePlan:
    plan = module.cached(SNMP_PLAN, lambda: compile_module(snmp_module(module)))
    return plan


def pick_auth(config: Config | None, params: Mapping[str, str], module: SnmpModule) -> SnmpAuth:
    """The `auth` parameter's auth; without one, a pre-0.23 module's own auth, else public_v2."""
    name = params.get("auth")
    if not name and module.auth is not None:
        return module.auth
    name = name or DEFAULT_AUTH
    auths = config.snmp_auths if config is not None else {}
    auth = auths.get(name)
    if auth is None:
        raise BadRequest(f"Unknown auth '{name}'")
    if not isinstance(auth, SnmpAuth):
        raise BadRequest(f"auth '{name}' is not an SNMP auth")
    return auth


def engine_id_of(params: Mapping[str, str]) -> bytes | None:
    text = params.get("snmp_engineid")
    if not text:
        return None
    try:
        return binascii.unhexlify(text.removeprefix("0x").removeprefix("0X"))
    except (binascii.Error, ValueError):
        raise BadRequest(f"'snmp_engineid' parameter is not valid hex: {text!r}") from None


async def scrape(target_text: str, modules: list[tuple[str, Module]], config: Config | None,
                 params: Mapping[str, str], deadline: float, log: ProbeLog, stop_on_error: bool = False,
                 wrap_counters: bool = True, module_concurrency: int = 1,
                 settings: Settings | None = None) -> ScrapeResult:
    """Scrape `target_text` with each module in order; raises BadRequest before any traffic.
    `module_concurrency` is --snmp.module-concurrency: modules walked at once, each with its own
    session and request IDs; results merge in module order whatever the timing. `settings` brings
    --snmp.lookup-cache and its size."""
    settings = settings if settings is not None else Settings()
    wrap = wrap_counters  # --snmp.wrap-large-counters
    plans = [(name, module, snmp_module(module), plan_of(module)) for name, module in modules]
    auths = [pick_auth(config, params, snmp) for _, _, snmp, _ in plans]
    engine_id = engine_id_of(params)
    context = params.get("snmp_context")
    results = [ModuleResult(name) for name, *_ in plans]
    families = Families()
    outcome = ScrapeResult(families, results)
    try:
        target = parse_target(target_text)
        # A slow resolver must not outlast the deadline (/snmp has no runner timeout around it).
        async with asyncio.timeout_at(deadline):
            domain, address = await resolve(target)
    except (SnmpError, TimeoutError) as err:
        reason = str(err) if isinstance(err, SnmpError) else f"error connecting to target {target.host}: timeout"
        for result in results:
            result.error = reason
        log.error("Error connecting to target", err=reason)
        return outcome
    engine = get_engine()
    source = source_of(settings.snmp_source_address)
    engine.community.use_source(source)
    # snmp_exporter: the flag, or `snmp_debug_packets=true` for one request.
    debug_packets = settings.snmp_debug_packets or params.get("snmp_debug_packets") == "true"
    concurrency = max(1, module_concurrency)
    slots = asyncio.Semaphore(concurrency)  # FIFO: modules start in the order they were asked for

    async def walk_and_render(name: str, plan: ModulePlan, auth: SnmpAuth, result: ModuleResult) -> Families | None:
        async with slots:
            if stop_on_error and any(r.error for r in results):
                return None
            start = time.monotonic()
            security = engine.security(auth, context)
            channel = StreamTransport(source) if target.stream else None
            max_age = settings.snmp_lookup_cache if plan.lookup_cache is None else plan.lookup_cache
            context_engine_id = engine_id if auth.version == 3 else None
            tables = None
            if max_age > 0 and plan.lookup_only:
                key = (target.transport, address, lookupcache.auth_key(auth, context, context_engine_id))
                tables = lookupcache.ScrapeTables(lookupcache.shared_cache(settings.snmp_lookup_cache_size), key,
                                                  max_age, name)
            module_families = Families()
            # Rendering while the walk waits for the agent, where the plan allows it (progressive.py).
            progress = ProgressiveRender(plan, module_families, wrap) if plan.progressive and PROGRESSIVE else None
            try:
                session = Session(engine, domain, address, security, plan.timeout, plan.retries, deadline,
                                  result.exchange, context_engine_id, channel, log.debug if debug_packets else None)
                pdus = await walk.scrape(session, plan, log, MAX_VARBINDS, target.host, tables, progress)
            except SnmpError as err:
                result.error = str(err)
                log.error("Error scraping target", module=name, err=str(err))
                stats.STATS.collection_duration.labels(name).observe(time.monotonic() - start)
                return None
            finally:
                if channel is not None:
                    channel.close()
                if progress is not None:
                    progress.cancel()
            result.walk_seconds = time.monotonic() - start
            result.exchange.pdus_returned = len(pdus)
            if progress is not None:
                await progress.finish()
            else:
                await render_module_sliced(plan, pdus, module_families, wrap)
            for line in module_families.rendered.debug:
                log.debug(line, module=name)
            result.duration = time.monotonic() - start
            stats.STATS.collection_duration.labels(name).observe(result.duration)
            return module_families

    def merge(name: str, result: ModuleResult, module_families: Families | None) -> None:
        """In module order, whatever order the walks ended in: a later module's clash is its error."""
        if module_families is None:
            return
        problems = module_families.rendered.errors or families.merge(module_families)
        if problems:
            result.error = problems[0] if len(problems) == 1 else (
                f"{len(problems)} errors occurred: " + "; ".join(problems[:5]))
            log.error("Invalid samples from module", module=name, err=result.error)
            return
        result.success = True
        log.debug("Module scraped", module=name, pdus=result.exchange.pdus_returned,
                  packets=result.exchange.packets_sent, seconds=round(result.duration, 6))

    stats.STATS.in_flight.inc()
    try:
        jobs = [(name, plan, auth, result) for (name, _, _, plan), auth, result in zip(plans, auths, results,
                                                                                        strict=True)]
        if concurrency == 1 or len(jobs) == 1:
            for name, plan, auth, result in jobs:
                merge(name, result, await walk_and_render(name, plan, auth, result))
        else:
            rendered = await asyncio.gather(*(walk_and_render(*job) for job in jobs))
            for (name, _, _, result), module_families in zip(jobs, rendered, strict=True):
                merge(name, result, module_families)
    finally:
        stats.STATS.in_flight.dec()
    return outcome

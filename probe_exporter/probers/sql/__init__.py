"""The SQL prober: `prober: sql` modules run sql_exporter collectors against `?target=`.

Order of a probe (the pipeline has taken its concurrency slots already): target checked against the
allowlist (400 before anything connects), credentials read, cached collectors served, the rest run
on a fresh connection, rows rendered as the configured metrics with their exact names.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from probe_exporter.config.module import Module
from probe_exporter.config.sql import Collector, SQLModule
from probe_exporter.extras import MissingExtra
from probe_exporter.logs import ProbeLog
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.probers.base import BadRequest, ProbeContext, Prober
from probe_exporter.probers.sql import drivers, limits
from probe_exporter.probers.sql.cache import CollectorResult, QueryStat
from probe_exporter.probers.sql.execute import Deadline, describe, run_collectors
from probe_exporter.probers.sql.spec import ConnectSpec, build_spec
from probe_exporter.probers.sql.target import Endpoint, resolve_target


class _Gauges:
    """The prober's own metrics, registered up front so a failure still shows them."""

    def __init__(self, metrics: ProbeMetrics, collectors: list[Collector]) -> None:
        self.connect = metrics.gauge("probe_sql_connect_duration_seconds",
                                     "Time taken to connect to the database, in seconds")
        labels = ("collector", "query")
        self.query_success = metrics.gauge_vec("probe_sql_query_success",
                                               "Whether the query succeeded and its rows fit its metrics", labels)
        self.query_duration = metrics.gauge_vec("probe_sql_query_duration_seconds",
                                                "Time taken by the query, in seconds", labels)
        self.query_rows = metrics.gauge_vec("probe_sql_query_rows", "Rows returned by the query", labels)
        self.cache_age = None
        if any(c.min_interval > 0 for c in collectors):
            self.cache_age = metrics.gauge_vec("probe_sql_collector_cache_age_seconds",
                                               "Age of the collector's results (0: run by this probe)",
                                               ("collector",))

    def record(self, stat: QueryStat) -> None:
        self.query_success.labels(stat.collector, stat.query).set(1 if stat.success else 0)
        self.query_duration.labels(stat.collector, stat.query).set(stat.duration)
        self.query_rows.labels(stat.collector, stat.query).set(stat.rows)


async def probe_sql(ctx: ProbeContext) -> bool:
    metrics, log = ctx.metrics, ctx.log
    sql: SQLModule | None = ctx.module.sql
    if sql is None:
        raise BadRequest(f"module {ctx.module_name!r} has no sql: block")
    deadline = Deadline(ctx.timeout)
    endpoint = await resolve_target(ctx.target, sql)  # BadRequest: malformed or not allowed
    gauges = _Gauges(metrics, sql.loaded_collectors)
    try:
        spec = await _connect_spec(sql, endpoint)
    except (OSError, KeyError, ValueError) as err:  # the messages name the file or variable, not its content
        log.error("Could not read the module's credentials or DSN", err=f"{type(err).__name__}: {err}")
        return False
    spec.cached = ctx.module.cached
    try:
        return await _probe_endpoint(ctx.module_name, sql, endpoint, spec, deadline, gauges, metrics, log)
    except MissingExtra as err:  # the driver's library is not installed
        log.error(str(err))
        return False
    except Exception as err:
        # Driver errors may quote connection strings: scrubbed here, never passed on to the runner's log.
        log.error("SQL probe failed", err=describe(err, spec))
        return False


async def _connect_spec(sql: SQLModule, endpoint: Endpoint) -> ConnectSpec:
    auth = sql.auth
    if auth is not None and (auth.username_file or auth.password_file):
        return await asyncio.to_thread(build_spec, sql, endpoint)  # re-read per probe: off the event loop
    return build_spec(sql, endpoint)


async def _probe_endpoint(module_name: str, sql: SQLModule, endpoint: Endpoint, spec: ConnectSpec,
                          deadline: Deadline, gauges: _Gauges, metrics: ProbeMetrics, log: ProbeLog) -> bool:
    if endpoint.seed_script is not None:
        from probe_exporter.probers.sql.drivers.sqlite import POOL
        from probe_exporter.probers.sql.seed import seeded_database

        try:
            spec.path = await asyncio.get_running_loop().run_in_executor(POOL.get(), seeded_database,
                                                                        endpoint.seed_script)
            spec.display = f"sqlite:///{spec.path}"
        except Exception as err:
            log.error("Could not build the SQLite database from its seed script", err=describe(err, spec))
            return False
    module_key = f"{module_name}:{id(sql)}"
    log.debug("Probing", dsn=spec.display)
    return await _probe_collectors(module_key, endpoint.key, sql, spec, deadline, gauges, metrics, log)


async def _probe_collectors(module_key: str, target_key: str, sql: SQLModule, spec: ConnectSpec,
                            deadline: Deadline, gauges: _Gauges, metrics: ProbeMetrics, log: ProbeLog) -> bool:
    cache = limits.state().cache
    collectors = sql.loaded_collectors
    results: dict[str, CollectorResult] = {}
    fresh_names: set[str] = set()
    success = True
    async with AsyncExitStack() as flights:
        to_run: list[Collector] = []
        for collector in collectors:
            if collector.min_interval <= 0:
                to_run.append(collector)
                continue
            key = (module_key, target_key, collector.collector_name)
            cached = cache.get(key, collector.min_interval)
            if cached is None:
                try:
                    async with asyncio.timeout(max(deadline.remaining(), 0.0)):
                        await flights.enter_async_context(cache.flight(key))
                except TimeoutError:
                    log.error("Waited too long for another probe running the same collector",
                              collector=collector.collector_name)
                    success = False
                    continue
                cached = cache.get(key, collector.min_interval)
            if cached is not None:
                results[collector.collector_name] = cached
                log.debug("Collector served from cache", collector=collector.collector_name)
            else:
                to_run.append(collector)
        if to_run:
            fresh, connect = await run_collectors(to_run, sql, spec, deadline, log)
            if connect.duration is not None:
                gauges.connect.set(connect.duration)
            success = success and not connect.failed
            for collector in to_run:
                result = fresh[collector.collector_name]
                results[collector.collector_name] = result
                fresh_names.add(collector.collector_name)
                if collector.min_interval > 0:
                    cache.put((module_key, target_key, collector.collector_name), result, sql.max_cache_keys)
    now = time.monotonic()
    for collector in collectors:
        outcome = results.get(collector.collector_name)
        if outcome is None:
            continue
        for stat in outcome.queries:
            gauges.record(stat)
            success = success and stat.success
        if gauges.cache_age is not None and collector.min_interval > 0:
            age = 0.0 if collector.collector_name in fresh_names else max(0.0, now - outcome.created)
            gauges.cache_age.labels(collector.collector_name).set(age)
    return _add_families(collectors, results, metrics, log) and success


def _add_families(collectors: list[Collector], results: dict[str, CollectorResult], metrics: ProbeMetrics,
                  log: ProbeLog) -> bool:
    """One family per metric name (collectors may share one), duplicate series dropped."""
    families: dict[str, Metric] = {}
    for collector in collectors:
        for metric in collector.metrics:
            if metric.metric_name not in families:
                families[metric.metric_name] = Metric(metric.metric_name, metric.help, metric.type)
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    ok = True
    for collector in collectors:
        result = results.get(collector.collector_name)
        if result is None:
            continue
        for sample in result.samples:
            if (sample.metric, sample.labels) in seen:
                ok = False
                log.error("Duplicate series across collectors dropped", collector=collector.collector_name,
                          metric=sample.metric)
                continue
            seen.add((sample.metric, sample.labels))
            families[sample.metric].samples.append(
                Sample(sample.metric, dict(sample.labels), sample.value, sample.timestamp))
    for family in families.values():
        metrics.add_family(family)
    return ok


def preload(module: Module) -> None:
    """The driver the module connects with (see registry.load)."""
    if module.sql is not None:
        drivers.load_driver(module.sql.driver)


async def shutdown() -> None:
    """Release the SQLite/SQLAlchemy worker threads (connections are per probe, none stay open)."""
    drivers.shutdown_pools()


PROBER = Prober(name="sql", probe=probe_sql, config_model=SQLModule, preload=preload, shutdown=shutdown)

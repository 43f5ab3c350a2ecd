"""Running a module's collectors against one target within the probe's deadline.

Queries run one after the other on one fresh connection by default (one server round trip each);
`max_connections_per_probe: N` spreads them over N connections so one slow query cannot starve the
rest. Each query gets min(query_timeout, time left). A connection that broke (dropped, or timed out
mid-query on a driver that cannot cancel) is replaced for the next query if time remains.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field

from probe_exporter.config.sql import Collector, QueryPlan, SQLModule
from probe_exporter.logs import ProbeLog
from probe_exporter.probers.sql import drivers
from probe_exporter.probers.sql.cache import CollectorResult, QueryStat
from probe_exporter.probers.sql.rows import RowError, map_rows
from probe_exporter.probers.sql.spec import ConnectSpec, scrub

# Below this, starting a query is pointless: it is reported as not run.
_MIN_QUERY_BUDGET = 0.005


class Deadline:
    """The probe's own deadline: the runner's timeout minus a reserve for stopping queries and
    closing connections, so the probe answers on time with its reasons rather than being cut off."""

    def __init__(self, timeout: float) -> None:
        # A fifth of the budget, 0.1-0.5 s: room for a cancel round trip (PG), KILL QUERY from a side
        # connection (MySQL) and closing, even on a busy machine.
        self.reserve = min(0.5, max(0.1, 0.2 * timeout))
        self.end = time.monotonic() + timeout - self.reserve

    def remaining(self) -> float:
        return self.end - time.monotonic()


def _cap(limit: float, remaining: float) -> float:
    return min(limit if limit > 0 else math.inf, remaining)


def describe(err: BaseException, spec: ConnectSpec) -> str:
    """One line for a log: the error's type and message with every secret scrubbed out."""
    text = " ".join(str(err).split()) or "no details"
    return scrub(f"{type(err).__name__}: {text}", spec.secrets())


@dataclass
class ConnectOutcome:
    failed: bool = False
    duration: float | None = None  # the first connection's


@dataclass
class _Work:
    collector: Collector
    plan: QueryPlan


@dataclass
class _Run:
    sql: SQLModule
    spec: ConnectSpec
    deadline: Deadline
    log: ProbeLog
    outcome: ConnectOutcome = field(default_factory=ConnectOutcome)

    async def connect(self) -> drivers.Connection | None:
        budget = _cap(self.sql.connect_timeout, self.deadline.remaining())
        if budget <= _MIN_QUERY_BUDGET:
            self.log.error("No time left to connect")
            self.outcome.failed = True
            return None
        self.spec.statement_timeout = _cap(self.sql.query_timeout, self.deadline.remaining())
        started = time.monotonic()
        try:
            conn = await drivers.connect(self.spec, budget)
        except TimeoutError:
            self.log.error("Connection timed out", dsn=self.spec.display, timeout_seconds=round(budget, 3))
            self.outcome.failed = True
            return None
        except Exception as err:
            self.log.error("Connection failed", dsn=self.spec.display, err=describe(err, self.spec))
            self.outcome.failed = True
            return None
        finally:
            if self.outcome.duration is None:
                self.outcome.duration = time.monotonic() - started
        self.log.debug("Connected", dsn=self.spec.display,
                       duration_seconds=round(time.monotonic() - started, 6))
        return conn

    async def run_query(self, conn: drivers.Connection, work: _Work, result: CollectorResult) -> None:
        collector, plan = work.collector.collector_name, work.plan
        budget = _cap(self.sql.query_timeout, self.deadline.remaining())
        if budget <= _MIN_QUERY_BUDGET:
            self.log.error("No time left to run the query", collector=collector, query=plan.name)
            result.queries.append(QueryStat(collector, plan.name, False, 0.0, 0))
            return
        started = time.monotonic()
        try:
            rows = await conn.query(plan.sql, budget, self.sql.max_rows_per_query)
        except drivers.QueryTimeout as err:
            self._failed(result, work, started, 0, "Query timed out", str(err))
            return
        except Exception as err:
            self._failed(result, work, started, 0, "Query failed", describe(err, self.spec))
            return
        duration = time.monotonic() - started
        if rows.truncated:
            self._failed(result, work, started, len(rows.rows), "Query returned too many rows",
                         f"more than max_rows_per_query ({self.sql.max_rows_per_query}); no samples kept")
            return
        try:
            mapped = map_rows(plan.metrics, rows.columns, rows.rows)
        except RowError as err:
            self._failed(result, work, started, len(rows.rows), "Query result does not fit its metrics", str(err))
            return
        if mapped.null_values:
            self.log.debug("NULL values skipped (no sample)", collector=collector, query=plan.name,
                           count=mapped.null_values)
        seen = {(s.metric, s.labels) for s in result.samples}
        success = True
        for sample in mapped.samples:
            if (sample.metric, sample.labels) in seen:
                if success:
                    self.log.error("Duplicate series dropped", collector=collector, query=plan.name,
                                   metric=sample.metric, labels=",".join(f"{k}={v}" for k, v in sample.labels))
                success = False
                continue
            seen.add((sample.metric, sample.labels))
            result.samples.append(sample)
        result.queries.append(QueryStat(collector, plan.name, success, duration, len(rows.rows)))
        self.log.debug("Query done", collector=collector, query=plan.name, rows=len(rows.rows),
                       duration_seconds=round(duration, 6))

    def _failed(self, result: CollectorResult, work: _Work, started: float, rows: int, msg: str,
                err: str) -> None:
        result.queries.append(QueryStat(work.collector.collector_name, work.plan.name, False,
                                        time.monotonic() - started, rows))
        self.log.error(msg, collector=work.collector.collector_name, query=work.plan.name, err=err)

    async def worker(self, queue: deque[_Work], results: dict[str, CollectorResult]) -> None:
        conn: drivers.Connection | None = None
        try:
            while queue:
                work = queue.popleft()
                result = results[work.collector.collector_name]
                if conn is not None and conn.broken:
                    await self.close(conn)
                    conn = None
                if conn is None and not self.outcome.failed:
                    conn = await self.connect()
                if conn is None:  # not connected: the query is reported, not run
                    result.queries.append(QueryStat(work.collector.collector_name, work.plan.name, False, 0.0, 0))
                    continue
                await self.run_query(conn, work, result)
        finally:
            if conn is not None:
                await self.close(conn)

    async def close(self, conn: drivers.Connection) -> None:
        """Closing is best effort: a failure to close must not cost the results already read."""
        try:
            await conn.close()
        except Exception as err:
            self.log.debug("Closing the connection failed", err=describe(err, self.spec))


async def run_collectors(collectors: list[Collector], sql: SQLModule, spec: ConnectSpec, deadline: Deadline,
                         log: ProbeLog) -> tuple[dict[str, CollectorResult], ConnectOutcome]:
    run = _Run(sql, spec, deadline, log)
    results = {c.collector_name: CollectorResult(c.collector_name) for c in collectors}
    queue = deque(_Work(c, plan) for c in collectors for plan in c.plans())
    workers = min(sql.max_connections_per_probe, len(queue))
    if workers <= 1:
        await run.worker(queue, results)
    else:
        await asyncio.gather(*(run.worker(queue, results) for _ in range(workers)))
    return results, run.outcome

"""snmp_exporter's `/snmp` endpoint, and `/probe` with several SNMP modules.

`/snmp` keeps upstream's contract so existing Prometheus jobs and `up`-based alerts work: the same
parameters and 400 messages, and any module failure or invalid sample is an HTTP 500 whose body
starts with `An error has occurred while serving metrics:`. `/probe` stays blackbox-style.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from prometheus_client.metrics_core import Metric
from starlette.requests import Request
from starlette.responses import Response

from probe_exporter import logs
from probe_exporter.config import Config, Module
from probe_exporter.config.snmp import DEFAULT_AUTH, DEFAULT_MODULE
from probe_exporter.exporter import Exporter
from probe_exporter.gotext import go_quote
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.probers.base import BadRequest
from probe_exporter.probers.snmp.stats import STATS
from probe_exporter.runner import ProbeOutcome, compute_timeout, new_probe_id
from probe_exporter.web import openapi_docs
from probe_exporter.web.responses import first_params, metrics_response, plain_error
from probe_exporter.web.routes import refuse_target

GATHER_ERROR_PREFIX = "An error has occurred while serving metrics:\n\n"


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Serve snmp_exporter's own metrics on /metrics, one duration series per SNMP module."""
    exporter: Exporter = app.state.exporter
    STATS.module_names = lambda: sorted(name for name, module in exporter.config.modules.items()
                                        if module.prober == "snmp")
    registry = exporter.metrics.registry
    try:
        registry.register(STATS)
    except ValueError:  # already there: another app instance serves the same exporter
        yield
        return
    try:
        yield
    finally:
        registry.unregister(STATS)


router = APIRouter(lifespan=_lifespan)


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def module_list(values: list[str]) -> list[str]:
    """Repeated and comma-separated names, empty items skipped, first occurrence kept."""
    names: list[str] = []
    for value in values:
        for name in value.split(","):
            if name and name not in names:
                names.append(name)
    return names


def _bad_request(message: str) -> Response:
    STATS.request_errors.inc()
    return plain_error(400, message)


@router.get("/snmp", openapi_extra=openapi_docs.SNMP)
async def snmp(request: Request) -> Response:
    from probe_exporter.probers.snmp.scrape import scrape

    exporter: Exporter = request.app.state.exporter
    query = request.query_params
    targets = query.getlist("target")
    if len(targets) != 1 or not targets[0]:
        return _bad_request("'target' parameter must be specified once")
    for single in ("auth", "snmp_context", "snmp_engineid"):
        if len(query.getlist(single)) > 1:
            return _bad_request(f"'{single}' parameter must only be specified once")
    names = module_list(query.getlist("module")) if "module" in query else [DEFAULT_MODULE]
    if not names:
        return _bad_request("'module' parameter must contain at least one module name")
    config = exporter.config
    modules: list[tuple[str, Module]] = []
    for name in names:
        module = config.modules.get(name)
        if module is None or module.prober != "snmp":
            return _bad_request(f"Unknown module '{name}'")
        modules.append((name, module))
    params = first_params(request)
    if "auth" in params and params["auth"] not in config.snmp_auths:
        return _bad_request(f"Unknown auth '{params['auth']}'")
    try:
        timeout = compute_timeout(request.headers.get("x-prometheus-scrape-timeout-seconds"),
                                  exporter.settings.timeout_offset, 0.0)
    except ValueError as err:
        return plain_error(500, f"Failed to parse timeout from Prometheus header: {err}")
    target = targets[0]
    refusal = refuse_target(exporter, modules, target)
    if refusal is not None:
        return refusal
    joined = ",".join(names)
    log = logs.ProbeLog(module=joined, target=target)
    deadline = asyncio.get_running_loop().time() + timeout
    start = time.monotonic()
    in_flight = exporter.metrics.in_flight_for(joined)
    in_flight.inc()
    try:
        async with contextlib.AsyncExitStack() as stack:
            # Waiting for a concurrency slot counts against the scrape's deadline, as on /probe.
            try:
                async with asyncio.timeout_at(deadline):
                    await stack.enter_async_context(
                        exporter.limiter.slot(joined, max(module.max_concurrency for _, module in modules)))
            except TimeoutError:
                reason = "the scrape could not start before its deadline: too many probes running"
                logs.log(logging.INFO, "SNMP scrape failed", target=target, modules=joined, reason=reason)
                return _gather_error(reason)
            result = await scrape(target, modules, config, params, deadline, log, stop_on_error=True,
                                  wrap_counters=exporter.settings.snmp_wrap_large_counters)
    except BadRequest as err:
        return _bad_request(str(err))
    finally:
        in_flight.dec()
    duration = time.monotonic() - start
    errors = [_module_error(m.name, m.error) for m in result.modules if m.error]
    for module_result in result.modules:
        exporter.metrics.observe_probe(module_result.name, "snmp", module_result.success, duration)
    _remember(exporter, joined, modules[0][1], target, result, log, duration, errors)
    if errors:
        logs.log(logging.INFO, "SNMP scrape failed", target=target, modules=",".join(names),
                 auth=params.get("auth", DEFAULT_AUTH), duration_seconds=round(duration, 6), reason=errors[0])
        body = errors[0] if len(errors) == 1 else (
            f"{len(errors)} error(s) occurred:\n" + "\n".join(f"* {e}" for e in errors))
        return _gather_error(body)
    families = list(result.families.rendered.families.values()) + [
        f for f in result.self_metric_families() if f.samples]
    return metrics_response(request, _Families(families))


def _gather_error(body: str) -> Response:
    """upstream's promhttp error page: HTTP 500, so `up` is 0 for a failing device."""
    return Response(GATHER_ERROR_PREFIX + body + "\n", status_code=500, media_type="text/plain; charset=utf-8",
                    headers={"X-Content-Type-Options": "nosniff"})


def _remember(exporter: Exporter, joined: str, first: Module, target: str, result: Any, log: logs.ProbeLog,
              duration: float, errors: list[str]) -> None:
    """Keep a /snmp scrape in the history like any probe, so the web page and /logs show it."""
    metrics = ProbeMetrics()
    for family in result.families.rendered.families.values():
        metrics.add_family(family)
    outcome = ProbeOutcome(new_probe_id(), joined, target, not errors, duration, metrics, log,
                           errors[0] if errors else "")
    exporter.history.add(outcome, first)


def _module_error(module: str, reason: str) -> str:
    return (f'error collecting metric Desc{{fqName: "snmp_error", help: "Error scraping target", '
            f'constLabels: {{module="{module}"}}, variableLabels: {{}}}}: {reason}')


def several_modules(request: Request, config: Config) -> list[tuple[str, Module]] | str | None:
    """`/probe?module=a,b` (or repeated `module`) whose first name is an SNMP module: the modules to
    combine into one probe, or a one-line reason for a 400. None otherwise: /probe then keeps
    blackbox_exporter's rule (the first `module` value wins; a comma is part of the name)."""
    names = module_list(request.query_params.getlist("module"))
    first = config.modules.get(names[0]) if len(names) > 1 else None
    if first is None or first.prober != "snmp":
        return None
    modules: list[tuple[str, Module]] = []
    for name in names:
        module = config.modules.get(name)
        if module is None:
            return f"Unknown module {go_quote(name)}"
        if module.prober != "snmp":
            return f'module "{name}" is not an SNMP module; only SNMP modules can be combined'
        modules.append((name, module))
    return modules

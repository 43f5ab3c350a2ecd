"""snmp_exporter's `/snmp` endpoint: its parameters become a pipeline.ProbeRequest.

`/snmp` keeps upstream's contract so existing Prometheus jobs and `up`-based alerts work: the same
parameters and 400 messages, and any module failure or invalid sample is an HTTP 500 whose body
starts with `An error has occurred while serving metrics:`. `/probe` stays blackbox-style.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import Response

from probe_exporter.config.snmp import DEFAULT_MODULE
from probe_exporter.exporter import Exporter
from probe_exporter.pipeline import ProbeRequest, Verdict
from probe_exporter.probers.snmp.stats import STATS
from probe_exporter.web.responses import first_params, metrics_response, module_list, plain_error

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


def _bad_request(message: str) -> Response:
    STATS.request_errors.inc()
    return plain_error(400, message)


async def snmp(request: Request) -> Response:
    """/snmp, answered by web/hotpath.py (and mounted by create_app as a plain route, as /probe)."""
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
    params = first_params(request)
    outcome = await exporter.probe(ProbeRequest(
        names, targets[0], params, endpoint="snmp", snmp_exporter=True,
        scrape_timeout_header=request.headers.get("x-prometheus-scrape-timeout-seconds")))
    if outcome.verdict is Verdict.BAD_REQUEST:
        STATS.request_errors.inc()
    if outcome.verdict is not Verdict.PROBED:
        return plain_error(int(outcome.verdict), outcome.reason)
    if outcome.module_errors:
        errors = [_module_error(name, reason) for name, reason in outcome.module_errors]
        body = errors[0] if len(errors) == 1 else (
            f"{len(errors)} error(s) occurred:\n" + "\n".join(f"* {e}" for e in errors))
        return _gather_error(body)
    return metrics_response(request, outcome.metrics)


def _gather_error(body: str) -> Response:
    """upstream's promhttp error page: HTTP 500, so `up` is 0 for a failing device."""
    return Response(GATHER_ERROR_PREFIX + body + "\n", status_code=500, media_type="text/plain; charset=utf-8",
                    headers={"X-Content-Type-Options": "nosniff"})


def _module_error(module: str, reason: str) -> str:
    return (f'error collecting metric Desc{{fqName: "snmp_error", help: "Error scraping target", '
            f'constLabels: {{module="{module}"}}, variableLabels: {{}}}}: {reason}')

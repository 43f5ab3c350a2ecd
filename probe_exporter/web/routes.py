"""HTTP routes. No probing logic here: requests are validated and handed to the runner."""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import logging
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from probe_exporter import logs
from probe_exporter.config import Config, ConfigError, Module
from probe_exporter.config.render import config_as_yaml
from probe_exporter.exporter import Exporter
from probe_exporter.gotext import go_quote
from probe_exporter.history import ProbeRecord
from probe_exporter.limits import TargetNotAllowed, check_target
from probe_exporter.probers.base import BadRequest
from probe_exporter.runner import ProbeOutcome, compute_timeout, debug_output, run_probe
from probe_exporter.web import openapi_docs, pages
from probe_exporter.web.responses import first_params, metrics_response, plain_error
from probe_exporter.workers.history import history_records, log_by_id, log_by_target

DEFAULT_MODULE = "http_2xx"

router = APIRouter()


def _exporter(request: Request) -> Exporter:
    exporter: Exporter = request.app.state.exporter
    return exporter


PROBE_METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]


async def probe(request: Request) -> Response:
    """/probe, mounted by create_app as a plain Starlette route (see there)."""
    exporter = _exporter(request)
    params = first_params(request)
    module_name = params.get("module") or DEFAULT_MODULE
    config = exporter.config
    from probe_exporter.web import snmp as snmp_web

    # Several SNMP modules in one probe (module=a,b or repeated): one probe named after all of them,
    # with every module's allowed_targets checked.
    combined = snmp_web.several_modules(request, config)
    if isinstance(combined, list):
        module_name = params["module"] = ",".join(name for name, _ in combined)
        module: Module | None = combined[0][1]
    else:
        module = None if combined else config.modules.get(module_name)
    if module is None:
        exporter.metrics.unknown_module.inc()
        exporter.metrics.bad_requests.labels("probe").inc()
        return plain_error(400, combined if isinstance(combined, str) else f"Unknown module {go_quote(module_name)}")
    try:
        timeout = compute_timeout(request.headers.get("x-prometheus-scrape-timeout-seconds"),
                                  exporter.settings.timeout_offset, module.timeout)
    except ValueError as err:
        return plain_error(500, f"Failed to parse timeout from Prometheus header: {err}")
    target = params.get("target", "")
    if not target:
        exporter.metrics.bad_requests.labels("probe").inc()
        return plain_error(400, "Target parameter is missing")
    # Decoded a second time, as blackbox_exporter does since #1525, for double-encoded targets.
    target = unquote(target)
    outcome = await probe_once(exporter, module_name, module, target, timeout, params, config,
                               combined if isinstance(combined, list) else None)
    if isinstance(outcome, Response):
        return outcome
    if params.get("debug") == "true":
        return PlainTextResponse(debug_output(outcome, module))
    return metrics_response(request, outcome.metrics)


async def probe_once(exporter: Exporter, module_name: str, module: Module, target: str, timeout: float,
                     params: dict[str, str], config: Config,
                     checked: list[tuple[str, Module]] | None = None) -> ProbeOutcome | Response:
    """The checks and bookkeeping every probe request shares (/probe and the landing page form):
    allowed_targets (403; of every module in `checked` when several are combined), the concurrency
    limits, self-metrics and the history."""
    refusal = refuse_target(exporter, checked or [(module_name, module)], target)
    if refusal is not None:
        return refusal
    in_flight = exporter.metrics.in_flight_for(module_name)
    in_flight.inc()
    try:
        outcome = await run_probe(module_name, module, target, timeout, params, config,
                                  limiter=exporter.limiter, settings=exporter.settings)
    except BadRequest as err:
        exporter.metrics.bad_requests.labels("probe").inc()
        return plain_error(400, str(err).replace("\n", "\\n"))  # user input must not split the line
    finally:
        in_flight.dec()
    exporter.metrics.observe_probe(module_name, module.prober, outcome.success, outcome.duration)
    exporter.history.add(outcome, module)
    return outcome


def refuse_target(exporter: Exporter, modules: Iterable[tuple[str, Module]], target: str) -> Response | None:
    """The 403 when any of the modules' allowed_targets does not cover `target` (logged and counted),
    else None. For every route that probes (/probe, the form, /snmp and multi-module requests)."""
    for module_name, module in modules:
        try:
            check_target(module_name, module, target)
        except TargetNotAllowed as err:
            exporter.metrics.targets_denied.labels(module_name).inc()
            logs.log(logging.INFO, "Target not allowed", module=module_name, target=logs.mask_target(target),
                     result="denied", reason=str(err))
            return plain_error(403, str(err))
    return None


@router.get("/metrics", openapi_extra=openapi_docs.METRICS)
async def self_metrics(request: Request) -> Response:
    return metrics_response(request, _exporter(request).metrics.registry)


@router.get("/-/healthy")
async def healthy() -> Response:
    return PlainTextResponse("Healthy")


@router.get("/-/ready")
async def ready(request: Request) -> Response:
    return PlainTextResponse("Ready")


@router.api_route("/-/reload", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def reload(request: Request) -> Response:
    if request.method != "POST":
        return plain_error(405, "This endpoint requires a POST request.")
    try:
        await _exporter(request).reload()
    except ConfigError as err:
        return plain_error(500, f"failed to reload config: {err}")
    return Response(b"", status_code=200)


@router.get("/config")
async def show_config(request: Request) -> Response:
    # A large snmp.yml takes about a second to render the first time: not on the event loop.
    return PlainTextResponse(await asyncio.to_thread(config_as_yaml, _exporter(request).config))


# The landing page form's deadline when the module sets none (no Prometheus header to go by).
FORM_DEFAULT_TIMEOUT = 10.0
FORM_MAX_DEBUG_CHARS = 200_000


@router.get("/", openapi_extra=openapi_docs.LANDING)
async def landing(request: Request) -> Response:
    exporter = _exporter(request)
    params = first_params(request)
    result = None
    if "target" in params or "module" in params:
        result = await _run_from_form(exporter, params)
    return HTMLResponse(pages.landing_page(exporter, result, await history_records(exporter)))


async def _run_from_form(exporter: Exporter, form: dict[str, str]) -> pages.FormResult:
    module_name, target, extra = form.get("module", ""), form.get("target", "").strip(), form.get("params", "")
    result = pages.FormResult(module_name=module_name, target=target, extra_params=extra)
    config = exporter.config
    module = config.modules.get(module_name)
    if module is None:
        result.error = f"Unknown module {go_quote(module_name)}"
        return result
    if not target:
        result.error = "Target parameter is missing"
        return result
    params = {key: value for key, value in parse_qsl(extra, keep_blank_values=True)}
    params.update(module=module_name, target=target)
    timeout = module.timeout or FORM_DEFAULT_TIMEOUT
    outcome = await probe_once(exporter, module_name, module, target, timeout, params, config)
    if isinstance(outcome, Response):
        result.error = bytes(outcome.body).decode().strip()
        return result
    result.record = ProbeRecord(outcome, module)
    text = debug_output(outcome, module)
    if len(text) > FORM_MAX_DEBUG_CHARS:  # a big walk would make a page no phone can show
        text = (text[:FORM_MAX_DEBUG_CHARS] + f"\n… {len(text) - FORM_MAX_DEBUG_CHARS} more characters: "
                "use /probe?debug=true for the whole output\n")
    result.debug_text = text
    return result


@functools.cache
def _stylesheet() -> bytes:
    return (importlib.resources.files("probe_exporter.web") / "static" / "style.css").read_bytes()


@router.get("/static/style.css")
async def stylesheet() -> Response:
    return Response(_stylesheet(), media_type="text/css; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=3600"})


@router.get("/logs", openapi_extra=openapi_docs.LOGS)
async def probe_logs(request: Request) -> Response:
    """A probe's debug text from the history, by id or by target (blackbox_exporter's /logs)."""
    exporter = _exporter(request)
    params = first_params(request)
    probe_id, target, module_name = params.get("id", ""), params.get("target", ""), params.get("module", "")
    if probe_id and target:
        return plain_error(400, "Probe id and target can't be defined at the same time")
    if not probe_id and not target:
        if module_name:
            return plain_error(400, "Probe module filter only works in conjunction with target parameter")
        return plain_error(400, "Probe id or target must be defined as http query parameters")
    if probe_id:
        if not probe_id.isdigit():
            return plain_error(400, "Invalid probe id")
        text = await log_by_id(exporter, int(probe_id))
        if text is None:
            return plain_error(404, "Probe id not found")
    else:
        text = await log_by_target(exporter, target, module_name or None)
        if text is None:
            return plain_error(404, "Probe target not found")
    return PlainTextResponse(text)
